//! `autoheal-relay`: serve, check-config, history, replay (the work is in
//! [`autoheal_relay::commands`]).

use std::process::ExitCode;

use clap::Parser;

use args::{Args, Command};
use autoheal_relay::commands::{self, HistoryFormat};

mod args;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoheal-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Serve { config } => commands::serve(&config)?,
        Command::CheckConfig { file } => {
            let report = commands::check_config(&file)?;
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
            let db = commands::journal_path(db.as_deref(), config.as_deref())?;
            let format = if json {
                HistoryFormat::Json
            } else {
                HistoryFormat::Table
            };
            print!("{}", commands::history(&db, limit, format)?);
        }
        Command::Replay {
            config,
            source,
            file,
        } => print!("{}", commands::replay(&config, source.into(), &file)?),
    }
    Ok(())
}
