//! `autoheal-relay`: serve, check-config, history, replay (the work is in [`autoheal_relay::cli`]).

use std::process::ExitCode;

use clap::Parser;

use autoheal_relay::cli::{self, Cli, Command, HistoryFormat};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoheal-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => cli::serve(&config)?,
        Command::CheckConfig { file } => {
            let report = cli::check_config(&file)?;
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}", report.summary);
        }
        Command::History {
            config,
            db,
            limit,
            json,
        } => {
            let db = cli::journal_path(db.as_deref(), config.as_deref())?;
            let format = if json {
                HistoryFormat::Json
            } else {
                HistoryFormat::Table
            };
            print!("{}", cli::history(&db, limit, format)?);
        }
        Command::Replay {
            config,
            source,
            file,
        } => print!("{}", cli::replay(&config, source.into(), &file)?),
    }
    Ok(())
}
