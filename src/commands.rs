//! What each CLI command does, once the configuration is loaded.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::{Command, PluginCommand};
use crate::config::{Config, DEFAULT_ALLOWED_HOSTS, Purpose};
use crate::providers::{self, FetchPolicy, PluginInfo, ProviderHost};
use crate::{App, db, discord, plugin_tools, telemetry};

/// How long `serve` waits for blocking tasks once everything else has stopped. With
/// [`crate::http::DRAIN_TIMEOUT`] and [`crate::app::TASKS_STOP`]: `serve` exits within 10 s
/// of SIGTERM.
const RUNTIME_STOP: Duration = Duration::from_millis(500);

/// What `command` needs from the configuration: only the commands that talk to Discord
/// need the bot token (`check-config` checks what `serve` reads, the token included).
#[must_use]
pub fn purpose(command: &Command) -> Purpose {
    match command {
        Command::Serve | Command::Invite | Command::CheckConfig => Purpose::Discord,
        Command::Migrate
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::ForgetGuild { .. }
        | Command::Health { .. }
        | Command::HashToken { .. }
        | Command::Plugin(_) => Purpose::Local,
    }
}

/// `docobo hash-token`: a new admin token and its hash, or the hash of a token on stdin.
///
/// # Errors
/// Standard input cannot be read, or holds no token.
pub fn hash_token(stdin: bool) -> anyhow::Result<()> {
    if stdin {
        let mut token = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut token)?;
        if token.trim().len() < 16 {
            anyhow::bail!(
                "the token on standard input is shorter than 16 characters: use a long random one, or run `docobo hash-token` without --stdin to make one"
            );
        }
        println!("{}", crate::web::auth::hash_token(&token));
        return Ok(());
    }
    let (token, hash) = crate::web::auth::new_admin_token();
    println!("admin token (keep it secret; it logs in at /dashboard/login): {token}");
    println!("put this in docobo.toml:\n[dashboard]\nadmin_token_hash = \"{hash}\"");
    Ok(())
}

/// Runs a command that needs the configuration (loaded for its [`purpose`]).
///
/// # Errors
/// The command failed; the error says why and how to fix it.
pub fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let busy = Duration::from_millis(u64::from(config.database.busy_timeout_ms));
    match command {
        Command::CheckConfig => {
            println!("configuration OK");
            Ok(())
        }
        Command::Invite => runtime()?.block_on(async {
            let url = discord::invite::fetch_url(&config.discord).await?;
            println!("{url}");
            println!(
                "scopes: {}; permissions: {} ({}). Then drag the bot's role above every role it sells.",
                discord::invite::SCOPES,
                discord::invite::permission_names(),
                discord::invite::PERMISSIONS.bits()
            );
            Ok(())
        }),
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
            db::backup_to(&config.database.path, &file, busy)?;
            println!("backup written to {}", file.display());
            Ok(())
        }
        Command::Restore { backup } => {
            let report = db::restore_from(&config.database.path, &backup, busy)?;
            print!("{}", restore_report(&backup, &report));
            Ok(())
        }
        Command::ForgetGuild { guild_id } => {
            let guild = crate::domain::GuildId::new(guild_id)
                .map_err(|e| anyhow::anyhow!("{e}. Fix: give the guild's id (a number)"))?;
            let mut conn = db::open_connection(&config.database.path, busy)?;
            db::migrate(&mut conn)?;
            let tx = conn.transaction().map_err(db::DbError::from)?;
            let forgotten = db::guilds::forget(&tx, guild)?;
            tx.commit().map_err(db::DbError::from)?;
            match forgotten {
                db::guilds::Forgotten::Unknown => {
                    anyhow::bail!("Docobo has no guild {guild}. Fix: check the id")
                }
                db::guilds::Forgotten::StillIn => anyhow::bail!(
                    "the bot is still in guild {guild} (or has not seen it leave). Fix: remove the bot from the server first, with Docobo running, then run this again"
                ),
                db::guilds::Forgotten::Deleted {
                    subscriptions,
                    events,
                } => {
                    println!(
                        "guild {guild} forgotten: {subscriptions} subscription(s) and {events} delivery record(s) deleted"
                    );
                    Ok(())
                }
            }
        }
        Command::Health { url } => {
            let url = url.unwrap_or_else(|| local_health_url(&config));
            runtime()?.block_on(health(&url))
        }
        Command::Plugin(PluginCommand::List) => runtime()?.block_on(async {
            let host = ProviderHost::load(crate::app::host_options(&config)).await?;
            print!("{}", list_report(&host));
            Ok(())
        }),
        Command::Plugin(PluginCommand::Inspect { file }) => {
            inspect(&file, &config.plugins.allowed_hosts)
        }
        Command::Plugin(PluginCommand::Install { file }) => runtime()?.block_on(async {
            let installed = plugin_tools::install_plugin(&file, &config).await?;
            print!("{}", plugin_tools::install_report(&installed));
            Ok(())
        }),
        Command::Plugin(plugin @ (PluginCommand::New { .. } | PluginCommand::Test { .. })) => {
            plugin_author(plugin)
        }
        Command::HashToken { stdin } => hash_token(stdin),
        Command::Serve => {
            telemetry::init(&config.log)?;
            let runtime = runtime()?;
            let result = runtime.block_on(async {
                let shutdown = CancellationToken::new();
                crate::shutdown::cancel_on_signals(shutdown.clone())?;
                App::build(config).await?.run_until_stopped(shutdown).await
            });
            // Dropping the runtime would wait for every blocking task, however long; a
            // database write in flight is a transaction, so leaving it is safe.
            runtime.shutdown_timeout(RUNTIME_STOP);
            result
        }
    }
}

/// `docobo plugin new` and `docobo plugin test`, which need no configuration.
///
/// # Errors
/// The folder cannot be written, the file does not load, or the plugin refused the
/// delivery (after printing why).
pub fn plugin_author(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::New { name } => {
            let scaffold = plugin_tools::new_plugin(&name)?;
            println!(
                "created plugin {:?} in {}\nnext:\n  cd {}\n  cargo test\n  cargo build --release --target wasm32-wasip2\n  docobo plugin test {} --body fixtures/payment.json --header 'x-example-secret: {secret}' --setting webhook_secret={secret} --setting api_token=t\nthen edit src/lib.rs for your provider; the guide is plugins/README.md in Docobo's repository",
                scaffold.id,
                scaffold.dir.display(),
                scaffold.dir.display(),
                scaffold
                    .artifact
                    .strip_prefix(&scaffold.dir)
                    .unwrap_or(&scaffold.artifact)
                    .display(),
                secret = plugin_tools::EXAMPLE_SECRET,
            );
            Ok(())
        }
        PluginCommand::Test {
            file,
            body,
            headers,
            settings,
            now,
        } => {
            let headers = headers
                .iter()
                .map(|h| plugin_tools::parse_header(h))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let config = settings
                .iter()
                .map(|c| plugin_tools::parse_setting(c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = std::fs::read(&body)
                .map_err(|e| anyhow::anyhow!("cannot read --body {}: {e}", body.display()))?;
            let fetch = FetchPolicy {
                allowed_hosts: DEFAULT_ALLOWED_HOSTS
                    .iter()
                    .map(|h| (*h).to_owned())
                    .collect(),
                allow_loopback_http: false,
            };
            let outcome = runtime()?.block_on(plugin_tools::test_plugin(
                &file, &headers, &body, &config, now, fetch,
            ))?;
            print!("{}", plugin_tools::test_report(&outcome));
            match outcome.result {
                Ok(_) => Ok(()),
                Err(_) => anyhow::bail!("the plugin refused the delivery (see above)"),
            }
        }
        PluginCommand::List | PluginCommand::Inspect { .. } | PluginCommand::Install { .. } => {
            anyhow::bail!("this plugin command needs the configuration")
        }
    }
}

/// `docobo plugin inspect FILE`, which needs no configuration (plugin authors run it).
///
/// # Errors
/// The file does not load; the error says why.
pub fn inspect_without_config(file: &Path) -> anyhow::Result<()> {
    let hosts: Vec<String> = DEFAULT_ALLOWED_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    inspect(file, &hosts)
}

fn inspect(file: &Path, allowed_hosts: &[String]) -> anyhow::Result<()> {
    let fetch = FetchPolicy {
        allowed_hosts: allowed_hosts.to_vec(),
        allow_loopback_http: false,
    };
    let report = runtime()?.block_on(providers::inspect(file, fetch))?;
    match report.result {
        Ok(info) => {
            println!("{} ({} bytes): loads", report.path.display(), report.size);
            print!("{}", describe(&info));
            Ok(())
        }
        Err(e) => anyhow::bail!("{} does not load: {e}", report.path.display()),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// The text of `docobo plugin list`.
#[must_use]
pub fn list_report(host: &ProviderHost) -> String {
    let mut out = String::new();
    for info in host.plugins() {
        out.push_str(&describe(info));
        out.push('\n');
    }
    for failure in host.failures() {
        let _ = writeln!(out, "NOT LOADED {}: {}", failure.source, failure.error);
    }
    if out.is_empty() {
        out.push_str("no plugins\n");
    }
    out
}

fn describe(info: &PluginInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} — {} {}", info.id, info.name, info.version);
    let _ = writeln!(out, "  source:       {}", info.source);
    let _ = writeln!(
        out,
        "  plugin API:   {}{}",
        info.api_version,
        if info.api_version == providers::API_VERSION {
            String::new()
        } else {
            format!(
                " (older than this Docobo's {}: loaded through an adapter, without the newer calls)",
                providers::API_VERSION
            )
        }
    );
    let _ = writeln!(
        out,
        "  optional calls: {}",
        join_or_none(
            &info
                .capabilities
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        )
    );
    let _ = writeln!(
        out,
        "  hosts:        {} (allowed: {})",
        join_or_none(&info.hosts),
        join_or_none(&info.allowed_hosts)
    );
    let _ = writeln!(
        out,
        "  products:     {}; poll: {}",
        if info.needs_products {
            "needed per paid role"
        } else {
            "not needed"
        },
        if info.supports_poll { "yes" } else { "no" }
    );
    if !info.webhook_events.is_empty() {
        let _ = writeln!(
            out,
            "  webhook events to enable: {}",
            info.webhook_events.join(", ")
        );
    }
    let _ = writeln!(out, "  config fields:");
    for field in &info.config_fields {
        let _ = writeln!(
            out,
            "    {:<20} {}{}{}",
            field.key,
            field.label,
            if field.required { " (required)" } else { "" },
            if field.secret { " (secret)" } else { "" }
        );
    }
    out
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// What `docobo restore` prints: what it did and the next step.
#[must_use]
pub fn restore_report(backup: &Path, report: &db::RestoreReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "restored {} into {} (integrity ok, migration level {})",
        backup.display(),
        report.database.display(),
        report.backup_level
    );
    match &report.aside {
        Some(aside) if report.aside_whole => {
            let _ = writeln!(
                out,
                "the previous database was moved aside, whole, to {}",
                aside.display()
            );
        }
        Some(aside) => {
            let _ = writeln!(
                out,
                "the previous database was moved aside to {} with its -wal file beside it (its WAL could not be checkpointed; keep both files together)",
                aside.display()
            );
        }
        None => {
            let _ = writeln!(out, "there was no previous database");
        }
    }
    if let Some(state) = &report.litestream_aside {
        let _ = writeln!(
            out,
            "Litestream's state for the previous database was moved to {}",
            state.display()
        );
    }
    let migrations = if report.pending.is_empty() {
        String::new()
    } else {
        format!(
            "; it applies {} newer migration(s) at start ({})",
            report.pending.len(),
            report.pending.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "next: start Docobo (`sudo systemctl start docobo`, `docker start docobo`, or `docobo serve`){migrations}. Events after the backup was taken are missing; the providers' poll may find some again"
    );
    out
}

/// Where the server on this machine answers `/health`.
fn local_health_url(config: &Config) -> String {
    let host = match config.server.bind {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{}/health", config.server.port)
}

/// `docobo health`: prints the report; an error unless the server says it is healthy.
async fn health(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let response = client.get(url).send().await.map_err(|e| {
        anyhow::anyhow!("cannot reach {url}: {e}. Is `docobo serve` running on this port?")
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("{body}");
    anyhow::ensure!(status.is_success(), "unhealthy: {url} answered {status}");
    Ok(())
}
