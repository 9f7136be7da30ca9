//! The `autoheal-relay` command line (clap); only the binary declares this module, so the
//! library stays free of argument parsing.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use autoheal_relay::model::Source;

/// `autoheal-relay` arguments.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Relays Alertmanager/Grafana alerts to HAProxy remediation runs"
)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Release a quarantined server (or one whose restore was given up, whose state is
    /// unknown, or that an operator held): the relay restores it through the health gate, or
    /// stops counting it out. Audited.
    Release {
        /// Configuration file naming the journal.
        #[arg(long, short)]
        config: PathBuf,
        /// The server, as `BACKEND/SERVER` (`*/SERVER` when its alerts name no backend).
        target: String,
    },
}

/// `--source` values: the webhook a payload came from.
// No doc comments on the variants: clap would turn them into a long per-value help listing.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceArg {
    Alertmanager,
    Grafana,
}

impl From<SourceArg> for Source {
    fn from(arg: SourceArg) -> Self {
        match arg {
            SourceArg::Alertmanager => Source::Alertmanager,
            SourceArg::Grafana => Source::Grafana,
        }
    }
}
