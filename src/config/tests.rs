//! Loading the configuration end to end: layers, problems, secrets, the example file.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::keys::{KEYS, Key};
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn defaults_apply_when_only_the_token_is_given() {
    let config =
        Config::load(None, false, env(&[("DOCOBO_DISCORD__TOKEN", "t0k")])).expect("valid");
    assert_eq!(config.server.port, 3000);
    assert_eq!(config.server.bind.to_string(), "0.0.0.0");
    assert_eq!(config.database.path, PathBuf::from("data/docobo.db"));
    assert_eq!(config.subscriptions.grace_period_hours, 72);
    assert_eq!(config.log.format, LogFormat::Auto);
    assert!(!config.discord.guild_members_intent);
    assert_eq!(config.server.public_url, None);
    assert_eq!(config.plugins.allowed_hosts, DEFAULT_ALLOWED_HOSTS);
    assert!(!config.plugins.allow_loopback_http);
}

#[test]
fn host_lists_come_from_toml_arrays_or_comma_separated_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "docobo.toml",
        "[plugins]\nallowed_hosts = [\"API.polar.sh\"]\n",
    );
    let from_file =
        Config::load(Some(&file), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")])).expect("valid");
    assert_eq!(from_file.plugins.allowed_hosts, ["api.polar.sh"]);
    let from_env = Config::load(
        Some(&file),
        true,
        env(&[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            ("DOCOBO_PLUGINS__ALLOWED_HOSTS", "a.example, b.example"),
        ]),
    )
    .expect("valid");
    assert_eq!(from_env.plugins.allowed_hosts, ["a.example", "b.example"]);
    let bad = Config::load(
        None,
        false,
        env(&[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            ("DOCOBO_PLUGINS__ALLOWED_HOSTS", "https://x.example/path"),
        ]),
    )
    .expect_err("not a host");
    assert!(bad.to_string().contains("plugins.allowed_hosts"), "{bad}");
}

#[test]
fn the_file_overrides_defaults_env_overrides_the_file_and_file_secrets_override_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "docobo.toml",
        "[server]\nport = 4000\nbind = \"127.0.0.1\"\npublic_url = \"https://pay.example.org/\"\n[discord]\ntoken = \"from-file\"\n",
    );
    let secret = write(&dir, "token", "from-secret-file\n");

    let only_file = Config::load(Some(&file), true, env(&[])).expect("valid");
    assert_eq!(only_file.server.port, 4000);
    assert_eq!(
        only_file.server.public_url.as_deref(),
        Some("https://pay.example.org")
    );
    assert_eq!(
        only_file
            .discord
            .token
            .as_ref()
            .expect("token")
            .expose_secret(),
        "from-file"
    );

    let with_env = Config::load(
        Some(&file),
        true,
        env(&[
            ("DOCOBO_SERVER__PORT", "5000"),
            ("DOCOBO_DISCORD__TOKEN", "from-env"),
        ]),
    )
    .expect("valid");
    assert_eq!(with_env.server.port, 5000);
    assert_eq!(
        with_env.server.bind.to_string(),
        "127.0.0.1",
        "untouched keys keep the file's value"
    );
    assert_eq!(
        with_env
            .discord
            .token
            .as_ref()
            .expect("token")
            .expose_secret(),
        "from-env"
    );

    let secret_path = secret.display().to_string();
    let with_file_secret = Config::load(
        Some(&file),
        true,
        env(&[
            ("DOCOBO_DISCORD__TOKEN", "from-env"),
            ("DOCOBO_DISCORD__TOKEN_FILE", &secret_path),
        ]),
    )
    .expect("valid");
    assert_eq!(
        with_file_secret
            .discord
            .token
            .as_ref()
            .expect("token")
            .expose_secret(),
        "from-secret-file"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_a_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "docobo.toml",
        "[server]\nport = \"eighty\"\nbind = \"everywhere\"\nprot = 1\n[log]\nformat = \"xml\"\n",
    );
    let err = Config::load(
        Some(&file),
        true,
        env(&[
            ("DOCOBO_DATABASE__BUSY_TIMEOUT_MS", "soon"),
            ("DOCOBO_DISCORD__GUILD_MEMBERS_INTENT", "maybe"),
            ("DOCOBO_SERVER_PORT", "8080"),
            // Not a setting (one underscore, and no setting's name): someone else's.
            ("DOCOBO_NONSENSE", "1"),
        ]),
    )
    .expect_err("invalid");
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "server.port",
        "server.bind",
        "server.prot",
        "log.format",
        "database.busy_timeout_ms",
        "discord.guild_members_intent",
        "discord.token",
        "DOCOBO_SERVER_PORT",
    ] {
        assert!(keys.contains(&want), "missing {want} in {keys:?}");
    }
    assert_eq!(err.problems.len(), 8, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("the configuration has 8 problems:"),
        "{text}"
    );
    assert!(text.contains("Did you mean server.port?"), "{text}");
    assert!(text.contains("DOCOBO_DISCORD__TOKEN_FILE"), "{text}");
    assert!(
        text.contains("from env DOCOBO_DATABASE__BUSY_TIMEOUT_MS"),
        "{text}"
    );
    for problem in &err.problems {
        assert!(problem.message.contains("Fix:"), "no fix in {problem}");
    }
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let config = Config::load(
        None,
        false,
        env(&[("DOCOBO_DISCORD__TOKEN", "hunter2-secret")]),
    )
    .expect("valid");
    assert!(!format!("{config:?}").contains("hunter2-secret"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(&dir, "docobo.toml", "[discord]\ntoken = 12345678\n");
    let err = Config::load(Some(&file), true, env(&[])).expect_err("not text");
    assert!(!err.to_string().contains("12345678"), "{err}");
}

#[test]
fn a_missing_or_broken_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let err = Config::load(Some(&missing), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")]))
        .expect_err("required file");
    assert!(
        err.to_string()
            .contains("cannot read the configuration file"),
        "{err}"
    );
    // Optional and missing: defaults.
    assert!(
        Config::load(
            Some(&missing),
            false,
            env(&[("DOCOBO_DISCORD__TOKEN", "t")])
        )
        .is_ok()
    );
    let broken = write(&dir, "broken.toml", "[server\nport = 1");
    let err = Config::load(Some(&broken), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")]))
        .expect_err("syntax");
    assert!(err.to_string().contains("is not valid TOML"), "{err}");
    let unreadable = Config::load(
        None,
        false,
        env(&[("DOCOBO_DISCORD__TOKEN_FILE", "/nonexistent/secret")]),
    )
    .expect_err("unreadable");
    assert!(
        unreadable
            .to_string()
            .contains("cannot read /nonexistent/secret"),
        "{unreadable}"
    );
}

#[test]
fn the_example_file_documents_every_key_and_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("docobo.example.toml");
    let text = std::fs::read_to_string(&example).expect("docobo.example.toml exists");
    for Key {
        section, name: key, ..
    } in KEYS
    {
        assert!(
            text.contains(&format!("[{section}]")),
            "[{section}] not in the example"
        );
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "{section}.{key} is not documented in docobo.example.toml"
        );
    }
    let config = Config::load(Some(&example), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")]))
        .expect("the example loads once the token is filled");
    assert_eq!(config.server.port, 3000);
}

#[test]
fn only_the_commands_that_talk_to_discord_need_the_token() {
    let local = Config::load_for(Purpose::Local, None, false, env(&[])).expect("no token needed");
    assert!(local.discord.token.is_none());
    assert!(
        local
            .discord
            .bot_token()
            .expect_err("no token")
            .to_string()
            .contains("DOCOBO_DISCORD__TOKEN")
    );
    let with = Config::load_for(
        Purpose::Local,
        None,
        false,
        env(&[("DOCOBO_DISCORD__TOKEN", "t0k")]),
    )
    .expect("valid");
    assert_eq!(
        with.discord.bot_token().expect("token").expose_secret(),
        "t0k"
    );

    for purpose_discord in [
        Config::load(None, false, env(&[])),
        Config::load_for(Purpose::Discord, None, false, env(&[])),
    ] {
        let err = purpose_discord.expect_err("the token is required");
        assert_eq!(err.problems.len(), 1, "{err}");
        let problem = &err.problems[0];
        assert_eq!(problem.key, "discord.token");
        for want in [
            "docobo serve",
            "docobo invite",
            "DOCOBO_DISCORD__TOKEN_FILE",
            "Fix:",
        ] {
            assert!(problem.message.contains(want), "{want:?} not in {problem}");
        }
    }
    // A blank token is no token.
    let blank = Config::load(None, false, env(&[("DOCOBO_DISCORD__TOKEN", "  ")]));
    assert!(blank.is_err());
    // Without the token, every other problem is still found, for either purpose.
    for purpose in [Purpose::Local, Purpose::Discord] {
        let err = Config::load_for(
            purpose,
            None,
            false,
            env(&[("DOCOBO_SERVER__PORT", "eighty")]),
        )
        .expect_err("bad port");
        assert!(err.problems.iter().any(|p| p.key == "server.port"), "{err}");
        assert_eq!(
            err.problems.iter().any(|p| p.key == "discord.token"),
            purpose == Purpose::Discord,
            "{err}"
        );
    }
}

#[test]
fn variables_that_only_share_the_prefix_are_not_settings() {
    let config = Config::load(
        None,
        false,
        env(&[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            // Scripts', tests' and benchmarks' own variables, and the CLI's.
            ("DOCOBO_BIN", "/usr/local/bin/docobo"),
            ("DOCOBO_PLUGINS_OUT", "/tmp/out"),
            ("DOCOBO_TEST_MOUNTS", "1"),
            ("DOCOBO_BENCH_PHASE_SECONDS", "30"),
            ("DOCOBO_DISCORD_OPENAPI", "/tmp/openapi.json"),
            ("DOCOBO_CONFIG", "/etc/docobo.toml"),
            ("DOCOBO_", "x"),
            ("DOCOBO_NONSENSE", "1"),
        ]),
    )
    .expect("none of them is a setting");
    assert_eq!(config.server.port, 3000);
    assert_eq!(config.plugins.dir, PathBuf::from("data/plugins"));
}

#[test]
fn a_misspelt_setting_in_the_environment_is_refused_with_the_right_name() {
    let err = Config::load(
        None,
        false,
        env(&[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            ("DOCOBO_SERVER__PROT", "8080"),
            ("DOCOBO_DATABSE__PATH", "x.db"),
            ("DOCOBO_SERVER__PORTT_FILE", "/nonexistent"),
        ]),
    )
    .expect_err("misspelt");
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    let prot = err
        .problems
        .iter()
        .find(|p| p.key == "server.prot")
        .expect("server.prot");
    assert_eq!(prot.origin.as_deref(), Some("env DOCOBO_SERVER__PROT"));
    assert!(
        prot.message.contains("Did you mean DOCOBO_SERVER__PORT?"),
        "{prot}"
    );
    assert!(
        text.contains("Did you mean DOCOBO_DATABASE__PATH?"),
        "{text}"
    );
    // Only secrets come from files, whatever the spelling.
    assert!(
        text.contains("only secrets can be read from a _FILE variable"),
        "{text}"
    );
}

#[test]
fn a_setting_written_with_one_underscore_is_refused_with_the_right_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = write(&dir, "token", "t");
    let token = token.display().to_string();
    let err = Config::load(
        None,
        false,
        env(&[
            ("DOCOBO_DISCORD__TOKEN", "t"),
            ("DOCOBO_SERVER_PORT", "8080"),
            ("DOCOBO_discord_guild_members_intent", "true"),
            ("DOCOBO_DISCORD_TOKEN_FILE", &token),
        ]),
    )
    .expect_err("one underscore");
    let text = err.to_string();
    assert_eq!(err.problems.len(), 3, "{text}");
    for (name, right) in [
        ("DOCOBO_SERVER_PORT", "DOCOBO_SERVER__PORT"),
        (
            "DOCOBO_discord_guild_members_intent",
            "DOCOBO_DISCORD__GUILD_MEMBERS_INTENT",
        ),
        ("DOCOBO_DISCORD_TOKEN_FILE", "DOCOBO_DISCORD__TOKEN_FILE"),
    ] {
        let problem = err
            .problems
            .iter()
            .find(|p| p.key == name)
            .unwrap_or_else(|| panic!("{name} not refused: {text}"));
        assert!(
            problem
                .message
                .contains(&format!("Did you mean {right}? Fix: rename it {right}")),
            "{problem}"
        );
    }
}
