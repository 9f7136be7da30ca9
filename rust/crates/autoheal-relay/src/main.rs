//! `autoheal-relay`: serve, check-config, history, replay.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use autoheal_relay::config::{Config, LogFormat};
use autoheal_relay::decide::{decide, Decision};
use autoheal_relay::model::{now_ms, Source};
use autoheal_relay::relay::executor_from_config;
use autoheal_relay::{journal, payload};

#[derive(Parser)]
#[command(
    version,
    about = "Relays Alertmanager/Grafana alerts to HAProxy remediation runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and exit (0 when usable).
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Show recent decisions and runs from the journal.
    History {
        /// Configuration file naming the journal.
        #[arg(long, short, required_unless_present = "db")]
        config: Option<PathBuf>,
        /// The journal database (instead of --config).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Rows to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Feed a saved webhook payload through the rules and print what would happen.
    Replay {
        /// Configuration file with the rules.
        #[arg(long, short)]
        config: PathBuf,
        /// Which webhook the payload came from.
        #[arg(long, value_enum, default_value_t = SourceArg::Alertmanager)]
        source: SourceArg,
        /// The payload (JSON).
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SourceArg {
    Alertmanager,
    Grafana,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoheal-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { file } => {
            let cfg = Config::load(&file)?;
            autoheal_relay::auth::Authenticator::load(&cfg.auth)?;
            for warning in environment_warnings(&cfg) {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: ok ({} rule(s), executor {}, auth {})",
                file.display(),
                cfg.rules.len(),
                executor_kind(&cfg),
                if cfg.auth.allow_unauthenticated {
                    "DISABLED"
                } else {
                    "on"
                }
            );
            Ok(())
        }
        Command::History {
            config,
            db,
            limit,
            json,
        } => {
            let path = match (db, config) {
                (Some(db), _) => db,
                (None, Some(c)) => Config::load(&c)?.journal.path,
                (None, None) => bail!("give --config or --db"),
            };
            if !path.exists() {
                bail!("no journal at {}", path.display());
            }
            let rows = journal::history(&path, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_history(&rows);
            }
            Ok(())
        }
        Command::Replay {
            config,
            source,
            file,
        } => replay(&config, source, &file),
    }
}

/// Things `serve` would trip over later (a run fails rather than the start), said up front.
fn environment_warnings(cfg: &Config) -> Vec<String> {
    use autoheal_relay::config::ExecutorConfig;
    let mut warnings = Vec::new();
    match &cfg.executor {
        ExecutorConfig::AnsibleRunner(r) if !cfg.guard.dry_run => {
            let on_path = |name: &Path| {
                std::env::var_os("PATH")
                    .is_some_and(|p| std::env::split_paths(&p).any(|dir| dir.join(name).is_file()))
            };
            if !(r.binary.is_file() || (r.binary.components().count() == 1 && on_path(&r.binary))) {
                warnings.push(format!("executor.binary {} not found", r.binary.display()));
            }
            if !r.inventory.exists() {
                warnings.push(format!(
                    "executor.inventory {} does not exist",
                    r.inventory.display()
                ));
            }
            if !r.env.contains_key("ANSIBLE_COLLECTIONS_PATH")
                && std::env::var_os("ANSIBLE_COLLECTIONS_PATH").is_none()
            {
                warnings.push("ANSIBLE_COLLECTIONS_PATH is set neither in executor.env nor in the environment".into());
            }
        }
        ExecutorConfig::Awx(a) if !a.token_file.is_file() => {
            warnings.push(format!(
                "executor.token_file {} not found",
                a.token_file.display()
            ));
        }
        _ => {}
    }
    warnings
}

fn executor_kind(cfg: &Config) -> &'static str {
    use autoheal_relay::config::ExecutorConfig;
    if cfg.guard.dry_run {
        return "dry-run (guard.dry_run)";
    }
    match cfg.executor {
        ExecutorConfig::AnsibleRunner(_) => "ansible-runner",
        ExecutorConfig::Awx(_) => "awx",
        ExecutorConfig::DryRun => "dry-run",
    }
}

fn init_logging(cfg: &Config) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .with_context(|| format!("log.level {:?}", cfg.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

fn serve(config: &Path) -> Result<()> {
    let cfg = Config::load(config)?;
    init_logging(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_async(cfg))
}

async fn serve_async(cfg: Config) -> Result<()> {
    let executor = executor_from_config(&cfg)?;
    if cfg.auth.allow_unauthenticated {
        tracing::warn!("authentication is disabled (auth.allow_unauthenticated = true)");
    }
    autoheal_relay::server::serve(&cfg, executor, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn replay(config: &Path, source: SourceArg, file: &Path) -> Result<()> {
    let cfg = Config::load(config)?;
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let source = match source {
        SourceArg::Alertmanager => Source::Alertmanager,
        SourceArg::Grafana => Source::Grafana,
    };
    let alerts = payload::parse(source, &body)
        .with_context(|| format!("{} is not a usable payload", file.display()))?;
    let now = now_ms();
    let decisions = decide(&alerts, &cfg.compiled_rules(), &cfg.targets, now);
    println!("{} alert(s) in {}", alerts.len(), file.display());
    for (alert, decision) in alerts.iter().zip(&decisions) {
        let head = format!(
            "{} {} [{}]",
            alert.status.as_str(),
            alert.name(),
            alert.fingerprint
        );
        match decision {
            Decision::Act(i) => {
                let delay = (i.not_before_ms - now).max(0);
                let weight = i
                    .weight
                    .as_deref()
                    .map(|w| format!(" weight {w}"))
                    .unwrap_or_default();
                let when = if delay > 0 {
                    format!(" after {}s", delay / 1000)
                } else {
                    String::new()
                };
                println!(
                    "  {head}: rule {} -> {} {}{weight}{when} (fleet {})",
                    i.rule,
                    i.state.as_str(),
                    i.target,
                    i.fleet
                );
            }
            Decision::Rejected { rule, field, error } => {
                println!("  {head}: rule {rule} -> REJECTED, label {field}: {error}");
            }
            Decision::Ignored { why } => println!("  {head}: nothing ({why})"),
        }
    }
    let actions: Vec<autoheal_relay::model::Action> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Act(i) => Some(i.into()),
            _ => None,
        })
        .collect();
    println!(
        "autoheal_actions (before coalescing and the guard):\n{}",
        serde_json::to_string_pretty(
            &autoheal_relay::executor::extra_vars(&actions)["autoheal_actions"]
        )?
    );
    Ok(())
}

fn print_history(rows: &[journal::HistoryRow]) {
    println!(
        "{:>6}  {:<24} {:<28} {:<9} {:<10} {:<24} {:<10} {:<22} DETAIL",
        "ID", "DECIDED (UTC)", "ALERT", "STATUS", "OUTCOME", "TARGET", "STATE", "RUN"
    );
    for r in rows.iter().rev() {
        let run = match (r.run_id, &r.run_status) {
            (Some(id), Some(status)) => {
                let rc = r.run_rc.map(|c| format!(" rc={c}")).unwrap_or_default();
                let ms = r
                    .run_duration_ms
                    .map(|d| format!(" {d}ms"))
                    .unwrap_or_default();
                format!("#{id} {status}{rc}{ms}")
            }
            _ => "-".into(),
        };
        println!(
            "{:>6}  {:<24} {:<28} {:<9} {:<10} {:<24} {:<10} {:<22} {}",
            r.id,
            format_ms(r.decided_ms),
            r.alert,
            r.alert_status,
            r.outcome,
            r.target.as_deref().unwrap_or("-"),
            r.state.as_deref().unwrap_or("-"),
            run,
            r.detail.as_deref().unwrap_or("")
        );
    }
}

fn format_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}
