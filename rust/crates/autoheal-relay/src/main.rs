//! `autoheal-relay`: serve, check-config, history, replay (the work is in
//! [`autoheal_relay::commands`]).

use std::process::ExitCode;

use clap::Parser;

use args::{Args, Command};
use autoheal_relay::commands::{self, CommandError, HistoryFormat};

mod args;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autoheal-relay: {}", with_causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and each of its sources, joined by `: `.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn run(args: Args) -> Result<(), CommandError> {
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
        Command::Release { config, target } => {
            println!("{}", commands::release(&config, &target)?);
        }
    }
    Ok(())
}
