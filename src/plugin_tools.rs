//! Tools for plugin authors: `docobo plugin new`, `plugin test` and `plugin install`.
//!
//! `plugin new` writes a crate that builds outside this repository and offline from a
//! registry cache: the template's code, the SDK and the WIT contract it is generated from
//! (vendored, as this binary was built with them), the plugins' `Cargo.lock` (the versions
//! the SDK is tested with), and a toolchain file that names the `wasm32-wasip2` target.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::clock::Clock;
use crate::providers::{FetchPolicy, HostOptions, PluginInfo, ProviderError, ProviderHost};

/// The template's code, which `plugin new` renames.
const TEMPLATE_LIB: &str = include_str!("../plugins/template/src/lib.rs");
/// The SDK's sources, vendored into a new plugin as `vendor/docobo-plugin-sdk/`.
const SDK_MANIFEST: &str = include_str!("../plugins/sdk/Cargo.toml");
const SDK_FILES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../plugins/sdk/src/lib.rs")),
    (
        "src/helpers.rs",
        include_str!("../plugins/sdk/src/helpers.rs"),
    ),
    ("src/host.rs", include_str!("../plugins/sdk/src/host.rs")),
    ("src/time.rs", include_str!("../plugins/sdk/src/time.rs")),
    ("src/url.rs", include_str!("../plugins/sdk/src/url.rs")),
];
/// The plugins' workspace manifest: where the SDK's `*.workspace = true` come from.
const PLUGINS_MANIFEST: &str = include_str!("../plugins/Cargo.toml");
const PLUGINS_LOCK: &str = include_str!("../plugins/Cargo.lock");
/// The contract the SDK generates its bindings from (`../../wit/` seen from the SDK).
const WIT_DIR: &str = "wit/provider@0.2.0";
const WIT: &str = include_str!("../wit/provider@0.2.0/provider.wit");

/// The secret the scaffold's example delivery is signed with (`fixtures/`).
pub const EXAMPLE_SECRET: &str = "example-webhook-secret";

/// What `plugin new` wrote.
#[derive(Debug)]
pub struct Scaffold {
    pub dir: PathBuf,
    pub id: String,
    /// Where `cargo build --release --target wasm32-wasip2` leaves the component.
    pub artifact: PathBuf,
}

/// `docobo plugin new NAME`: a new plugin crate in the folder `NAME`, whose plugin id is
/// the folder's name.
///
/// # Errors
/// The name is not a valid plugin id, the folder exists, or it cannot be written.
pub fn new_plugin(dir: &Path) -> anyhow::Result<Scaffold> {
    let id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("give the new plugin's folder a name, e.g. `docobo plugin new my-pay`")?
        .to_owned();
    check_id(&id)?;
    anyhow::ensure!(
        !dir.exists(),
        "{} already exists. Fix: pick a new folder name, or remove it",
        dir.display()
    );
    let lib_name = id.replace('-', "_");
    let files = scaffold_files(&id)?;
    for (path, content) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Scaffold {
        artifact: dir
            .join("target/wasm32-wasip2/release")
            .join(format!("{lib_name}.wasm")),
        dir: dir.to_owned(),
        id,
    })
}

/// A plugin id as the host requires it: `[a-z0-9-]{1,32}`, not starting with `-`.
fn check_id(id: &str) -> anyhow::Result<()> {
    let valid = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id.as_bytes()[0].is_ascii_lowercase();
    anyhow::ensure!(
        valid,
        "{id:?} cannot be a plugin id: the folder name becomes the id in webhook URLs, so it must be 1–32 lower-case letters, digits and dashes, starting with a letter (e.g. `my-pay`)"
    );
    anyhow::ensure!(
        !matches!(id, "polar" | "sepay"),
        "{id:?} is a built-in plugin's id. Fix: pick another name"
    );
    Ok(())
}

fn scaffold_files(id: &str) -> anyhow::Result<Vec<(String, String)>> {
    let dependency = |name: &str| workspace_line(PLUGINS_MANIFEST, "workspace.dependencies", name);
    let serde_json = dependency("serde_json")?;
    let mut files = vec![
        (
            "Cargo.toml".to_owned(),
            format!(
                r#"[package]
name = "{id}"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[lib]
# A WASM component is a C-style dynamic library.
crate-type = ["cdylib"]

[dependencies]
# The SDK as this Docobo was built with it, and the WIT contract it reads (wit/).
docobo-plugin-sdk = {{ path = "vendor/docobo-plugin-sdk" }}
{serde_json}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# Its own workspace, wherever the folder is.
[workspace]
"#
            ),
        ),
        (
            "rust-toolchain.toml".to_owned(),
            "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\nprofile = \"minimal\"\n"
                .to_owned(),
        ),
        (".gitignore".to_owned(), "/target\n".to_owned()),
        ("Cargo.lock".to_owned(), PLUGINS_LOCK.to_owned()),
        ("src/lib.rs".to_owned(), template_lib(id)),
        ("README.md".to_owned(), readme(id)),
        (
            "fixtures/payment.json".to_owned(),
            EXAMPLE_DELIVERY.to_owned(),
        ),
        (format!("{WIT_DIR}/provider.wit"), WIT.to_owned()),
        (
            "vendor/docobo-plugin-sdk/Cargo.toml".to_owned(),
            sdk_manifest()?,
        ),
    ];
    for (path, content) in SDK_FILES {
        files.push((
            format!("vendor/docobo-plugin-sdk/{path}"),
            (*content).to_owned(),
        ));
    }
    Ok(files)
}

/// The example delivery the template accepts (with `x-example-secret: EXAMPLE_SECRET`).
const EXAMPLE_DELIVERY: &str = r#"{"id": "evt_1", "type": "payment.succeeded", "payment_id": "pay_1", "metadata": {"guild_id": "111111111111111111", "user_id": "222222222222222222", "role_id": "333333333333333333"}, "amount": 500, "currency": "usd", "created_at": 1767225600000}
"#;

/// The template with its id and name replaced by the new plugin's.
fn template_lib(id: &str) -> String {
    TEMPLATE_LIB
        .replacen(
            "PluginInfo::new(\"example\", \"Example Pay\"",
            &format!("PluginInfo::new(\"{id}\", \"{id}\""),
            1,
        )
        .replacen(
            "//! `example`: a minimal Docobo payment-provider plugin to copy. See README.md.",
            &format!(
                "//! `{id}`: a Docobo payment-provider plugin, started from the template of `docobo plugin new`."
            ),
            1,
        )
}

/// The SDK's manifest with every `x.workspace = true` resolved from the plugins' workspace.
fn sdk_manifest() -> anyhow::Result<String> {
    let mut out = String::new();
    let mut skip_lints = false;
    for line in SDK_MANIFEST.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skip_lints = trimmed == "[lints]";
        }
        if skip_lints {
            continue;
        }
        match trimmed.strip_suffix(".workspace = true") {
            Some(key) if matches!(key, "edition" | "rust-version" | "license" | "publish") => {
                out.push_str(&workspace_line(PLUGINS_MANIFEST, "workspace.package", key)?);
            }
            Some(key) => {
                out.push_str(&workspace_line(
                    PLUGINS_MANIFEST,
                    "workspace.dependencies",
                    key,
                )?);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// The line `key = …` of `[section]` in a manifest.
fn workspace_line(manifest: &str, section: &str, key: &str) -> anyhow::Result<String> {
    let header = format!("[{section}]");
    let mut inside = false;
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == header;
        } else if inside
            && trimmed
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Ok(trimmed.to_owned());
        }
    }
    anyhow::bail!("plugins/Cargo.toml has no `{key}` in [{section}] (a Docobo build problem)")
}

fn readme(id: &str) -> String {
    let lib = id.replace('-', "_");
    format!(
        r"# {id}: a Docobo payment-provider plugin

Started with `docobo plugin new {id}`. `src/lib.rs` is the template for an imaginary
“Example Pay”: replace its calls with your provider's. The guide is `plugins/README.md` in
Docobo's repository (“Writing a provider plugin”).

```sh
cargo test                                            # the logic, natively, with MockHost
cargo build --release --target wasm32-wasip2          # the component
docobo plugin test target/wasm32-wasip2/release/{lib}.wasm \
  --body fixtures/payment.json \
  --header 'x-example-secret: {EXAMPLE_SECRET}' \
  --setting webhook_secret={EXAMPLE_SECRET} --setting api_token=t
docobo plugin install target/wasm32-wasip2/release/{lib}.wasm
```

`vendor/docobo-plugin-sdk` and `wit/` are the SDK and the contract (`docobo:provider@0.2.0`)
of the Docobo that wrote this folder; `Cargo.lock` pins the versions the SDK is tested with.
"
    )
}

/// One `--header` as `NAME: VALUE` (or `NAME:VALUE`); the name is lower-cased, as the
/// webhook route passes it.
///
/// # Errors
/// There is no `:` or the name is empty.
pub fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = text
        .split_once(':')
        .filter(|(name, _)| !name.trim().is_empty())
        .with_context(|| format!("--header {text:?}: write it as NAME:VALUE"))?;
    Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
}

/// One `--setting` as `KEY=VALUE`.
///
/// # Errors
/// There is no `=` or the key is empty.
pub fn parse_setting(text: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = text
        .split_once('=')
        .filter(|(key, _)| !key.trim().is_empty())
        .with_context(|| format!("--setting {text:?}: write it as KEY=VALUE"))?;
    Ok((key.trim().to_owned(), value.to_owned()))
}

/// What `plugin test` found.
#[derive(Debug)]
pub struct TestOutcome {
    pub info: PluginInfo,
    pub result: Result<Vec<crate::domain::ProviderEvent>, ProviderError>,
}

/// `docobo plugin test FILE`: loads the file alone in the real sandbox and passes it one
/// delivery, as the webhook route would.
///
/// # Errors
/// The file does not load as a plugin.
pub async fn test_plugin(
    file: &Path,
    headers: &[(String, String)],
    body: &[u8],
    config: &crate::domain::PluginConfig,
    now_ms: Option<i64>,
    fetch: FetchPolicy,
) -> anyhow::Result<TestOutcome> {
    let (host, info) = load_alone(file, fetch, now_ms).await?;
    let result = host
        .handle_webhook(info.id.as_str(), config, headers, body)
        .await;
    Ok(TestOutcome { info, result })
}

/// Loads one plugin file on its own (no built-ins, no plugins.dir).
async fn load_alone(
    file: &Path,
    fetch: FetchPolicy,
    now_ms: Option<i64>,
) -> anyhow::Result<(ProviderHost, PluginInfo)> {
    let host = ProviderHost::load(HostOptions {
        extra_files: vec![file.to_owned()],
        fetch,
        clock: now_ms.map_or(Clock::System, Clock::fixed),
        ..HostOptions::default()
    })
    .await?;
    let loaded = host.plugins().next().cloned();
    if let Some(info) = loaded {
        return Ok((host, info));
    }
    match host.failures().first() {
        Some(failure) => anyhow::bail!("{} does not load: {}", file.display(), failure.error),
        None => anyhow::bail!("{} does not load", file.display()),
    }
}

/// The text `plugin test` prints.
#[must_use]
pub fn test_report(outcome: &TestOutcome) -> String {
    let mut out = String::new();
    let info = &outcome.info;
    let _ = writeln!(
        out,
        "{} {} (plugin API {}) loaded in the sandbox",
        info.id, info.version, info.api_version
    );
    match &outcome.result {
        Ok(events) => {
            let _ = writeln!(
                out,
                "verified: {} event(s); Docobo would store and apply:",
                events.len()
            );
            for event in events {
                let _ = writeln!(out, "{}", event.normalized_json());
            }
        }
        Err(error) => {
            let _ = writeln!(out, "refused: {error}");
        }
    }
    out
}

/// What `plugin install` did.
#[derive(Debug)]
pub struct Installed {
    pub info: PluginInfo,
    pub path: PathBuf,
    /// A file of this plugin was there before and was replaced.
    pub replaced: bool,
    /// Hosts the plugin declares that the operator has not allowed (`plugins.allowed_hosts`).
    pub hosts_not_allowed: Vec<String>,
}

/// `docobo plugin install FILE`: checks that the file loads in the sandbox and does not clash
/// with another plugin, then copies it into `plugins.dir` as `<id>.wasm` (atomically: a
/// running server never sees half a file).
///
/// # Errors
/// The file does not load, its id is taken by a built-in or another file, or the copy fails.
pub async fn install_plugin(file: &Path, config: &crate::Config) -> anyhow::Result<Installed> {
    let plugins = &config.plugins;
    let fetch = FetchPolicy {
        allowed_hosts: plugins.allowed_hosts.clone(),
        allow_loopback_http: plugins.allow_loopback_http,
    };
    let (_, info) = load_alone(file, fetch.clone(), None).await?;
    anyhow::ensure!(
        !matches!(info.id.as_str(), "polar" | "sepay"),
        "{} is a plugin with the id \"{}\", which a built-in plugin has. Fix: give the plugin another id in its plugin_info (to run your own build of a built-in instead, copy it into plugins.dir yourself: Docobo then warns at start that it replaces the built-in)",
        file.display(),
        info.id.as_str()
    );
    let dir = &plugins.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create plugins.dir {}", dir.display()))?;
    let path = dir.join(format!("{}.wasm", info.id));
    // Every other file in plugins.dir, on its own: two files with one id would leave
    // which one loads to the order of the folder.
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let other = entry?.path();
        if other.extension().is_none_or(|ext| ext != "wasm")
            || other.file_name() == path.file_name()
        {
            continue;
        }
        if let Ok((_, other_info)) = load_alone(&other, fetch.clone(), None).await {
            anyhow::ensure!(
                other_info.id != info.id,
                "plugins.dir already has a plugin \"{}\" in {}. Fix: remove that file first, then install again",
                info.id.as_str(),
                other.display()
            );
        }
    }
    let replaced = path.exists();
    let partial = dir.join(format!(".{}.wasm.partial", info.id));
    std::fs::copy(file, &partial)
        .and_then(|_| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot copy {} to {}", file.display(), path.display()))?;
    let hosts_not_allowed = info
        .hosts
        .iter()
        .filter(|host| !plugins.allowed_hosts.contains(host))
        .cloned()
        .collect();
    Ok(Installed {
        info,
        path,
        replaced,
        hosts_not_allowed,
    })
}

/// The text `plugin install` prints.
#[must_use]
pub fn install_report(installed: &Installed) -> String {
    let info = &installed.info;
    let mut out = format!(
        "installed {} {} (plugin API {}) as {}{}\n",
        info.id,
        info.version,
        info.api_version,
        installed.path.display(),
        if installed.replaced {
            ", replacing the file that was there"
        } else {
            ""
        }
    );
    if !installed.hosts_not_allowed.is_empty() {
        let _ = writeln!(
            out,
            "it calls {} which plugins.allowed_hosts does not allow yet: add them (DOCOBO_PLUGINS__ALLOWED_HOSTS or docobo.toml), or its calls will be refused",
            installed.hosts_not_allowed.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "next: restart Docobo to load it (`sudo systemctl restart docobo`, `docker restart docobo`, or stop and start `docobo serve`); owners then pick \"{}\" in /setup",
        info.id.as_str()
    );
    out
}
