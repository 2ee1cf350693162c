//! The `docobo` binary: parse the command line, load the configuration, start logging, and
//! hand over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use docobo::cli::{Cli, Command};
use docobo::{App, Config, db, telemetry};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An explicit --config must exist; the default ./docobo.toml is optional.
    let (file, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("docobo.toml"), false),
    };
    let config = match Config::load(Some(&file), required, std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("docobo: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli.command.unwrap_or(Command::Serve), config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docobo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let busy = Duration::from_millis(u64::from(config.database.busy_timeout_ms));
    match command {
        Command::CheckConfig => {
            println!("configuration OK");
            Ok(())
        }
        Command::Migrate => {
            let (_, report) = db::Db::open(&config.database.path, busy)?;
            println!(
                "{}: {} migration(s) applied",
                config.database.path.display(),
                report.applied.len()
            );
            Ok(())
        }
        Command::Backup { file } => {
            db::backup_to(&config.database.path, Path::new(&file), busy)?;
            println!("backup written to {}", file.display());
            Ok(())
        }
        Command::Serve => {
            telemetry::init(&config.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let shutdown = CancellationToken::new();
                docobo::shutdown::cancel_on_signals(shutdown.clone())?;
                App::build(config).await?.run_until_stopped(shutdown).await
            })
        }
    }
}
