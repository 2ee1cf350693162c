//! The `docobo` binary: parse the command line, load the configuration, and hand over to
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use docobo::Config;
use docobo::cli::{Cli, Command, PluginCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    // Plugin authors inspect a file without configuring a bot.
    if let Command::Plugin(PluginCommand::Inspect { file }) = &command
        && cli.config.is_none()
    {
        return exit(docobo::commands::inspect_without_config(file));
    }
    // Starting and testing a plugin needs no configuration at all.
    if let Command::Plugin(PluginCommand::Test { .. }) = &command
        && let Some(path) = &cli.config
        && path.to_string_lossy().contains('=')
    {
        eprintln!(
            "docobo: plugin test takes the plugin's settings as --setting KEY=VALUE; --config names Docobo's configuration file"
        );
        return ExitCode::from(2);
    }
    if let Command::Plugin(plugin @ (PluginCommand::New { .. } | PluginCommand::Test { .. })) =
        command
    {
        return exit(docobo::commands::plugin_author(plugin));
    }
    if let Command::HashToken { stdin } = command {
        return exit(docobo::commands::hash_token(stdin));
    }
    // An explicit --config must exist; the default ./docobo.toml is optional.
    let (file, required) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("docobo.toml"), false),
    };
    let purpose = docobo::commands::purpose(&command);
    match Config::load_for(purpose, Some(&file), required, std::env::vars()) {
        Ok(config) => exit(docobo::commands::run(command, config)),
        Err(e) => {
            eprintln!("docobo: {e}");
            ExitCode::from(2)
        }
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docobo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
