//! Command-line definitions (clap). No logic here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Docobo: sell paid Discord roles from one small self-hosted binary.
#[derive(Debug, Parser)]
#[command(name = "docobo", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file. Without it, ./docobo.toml is used if present.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "DOCOBO_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot and the webhook server (the default).
    Serve,
    /// Create or upgrade the database, then exit.
    Migrate,
    /// Check the configuration `serve` reads (the bot token included), print every problem,
    /// and exit non-zero if there are any.
    CheckConfig,
    /// Print the link that adds the bot to a server, with the scopes and permissions it needs.
    /// Asks Discord which application the token belongs to.
    Invite,
    /// Write a consistent copy of the live database to FILE (safe while serving).
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
    /// Replace the database with BACKUP (a file written by `docobo backup`). Refuses while a
    /// server runs on it, or if BACKUP is damaged or from a newer Docobo; the old database is
    /// moved aside, not deleted.
    Restore {
        /// The backup to restore.
        backup: PathBuf,
    },
    /// Delete everything kept for a guild the bot was removed from: its settings and
    /// credentials, paid roles, members, subscriptions and deliveries. Refuses a guild the
    /// bot is still in (remove the bot from the server first). Safe while serving.
    ForgetGuild {
        /// The guild (server) id.
        guild_id: u64,
    },
    /// Ask the running server (on this machine) whether it is healthy; exit 0 if so, 1 if not.
    /// For Docker's HEALTHCHECK and monitoring scripts.
    Health {
        /// The URL to ask instead of `http://127.0.0.1:{server.port}/health`.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Make the operator's dashboard admin token: prints a new random token (keep it, it logs
    /// you in at /dashboard/login) and the hash for `dashboard.admin_token_hash`. With
    /// `--stdin`, hashes a token read from standard input instead. Needs no configuration.
    HashToken {
        /// Read the token from standard input instead of making one.
        #[arg(long)]
        stdin: bool,
    },
    /// Provider plugins: list the loaded ones, or inspect a file.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the built-in plugins and those in plugins.dir, and the ones that fail to load.
    List,
    /// Show what a plugin file is, what it needs, and whether it loads.
    Inspect {
        /// The plugin (.wasm component).
        file: PathBuf,
    },
    /// Start a new plugin: a crate in folder NAME (its name is the plugin id), from the
    /// template, with the SDK and the WIT contract vendored so it builds anywhere.
    New {
        /// The folder to create; its last part is the plugin id (e.g. `my-pay`).
        name: PathBuf,
    },
    /// Pass one webhook delivery to a plugin file in the real sandbox and print the events
    /// it yields, or why it refused the delivery. Needs no configuration.
    Test {
        /// The plugin (.wasm component).
        file: PathBuf,
        /// The delivery's raw body.
        #[arg(long, value_name = "FILE")]
        body: PathBuf,
        /// A request header, `NAME:VALUE`; repeat for several (and for a header sent on
        /// several lines).
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// A setting of the plugin, `KEY=VALUE` (as an owner enters it in /setup); repeat.
        /// (Not `--config`: that names Docobo's configuration file, for every command.)
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// The clock the plugin sees, unix milliseconds (default: now), for a delivery
        /// signed at a fixed time.
        #[arg(long, value_name = "UNIX_MS")]
        now: Option<i64>,
    },
    /// Check a plugin file and copy it into plugins.dir, where Docobo loads it at start.
    Install {
        /// The plugin (.wasm component).
        file: PathBuf,
    },
}
