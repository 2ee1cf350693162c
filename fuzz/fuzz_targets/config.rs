//! Configuration parsing: `Config::load` from a TOML file and `DOCOBO_*` environment
//! variables, as `docobo serve` and `docobo check-config` read them.
//!
//! Input: the TOML text, then a NUL byte, then environment lines `NAME=value`. `*_FILE`
//! variables (a secret read from a file) may only name the fuzzer's own secret file.

#![no_main]

use std::sync::OnceLock;

use docobo::Config;
use libfuzzer_sys::fuzz_target;

/// The content of the secret file (a `*_FILE` variable names it).
const SECRET: &str = "token-from-a-file-7d1c";

struct Files {
    _dir: tempfile::TempDir,
    toml: std::path::PathBuf,
    secret: std::path::PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).expect("write the secret file");
        Files {
            toml: dir.path().join("docobo.toml"),
            secret,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let files = files();
    let (toml, env) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    if std::fs::write(&files.toml, toml).is_err() {
        return;
    }
    let secret = files.secret.to_string_lossy().into_owned();
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let value = if name.ends_with("_FILE") {
                secret.clone()
            } else {
                value.to_owned()
            };
            Some((name.to_owned(), value))
        })
        .collect();
    match Config::load(Some(&files.toml), true, env) {
        Ok(config) => {
            // A secret's value never shows.
            assert!(!format!("{config:?}").contains(SECRET), "{config:?}");
        }
        Err(error) => {
            assert!(!error.problems.is_empty(), "an error without a problem");
            assert!(!error.to_string().contains(SECRET), "{error}");
            for problem in &error.problems {
                assert!(!problem.to_string().is_empty());
            }
        }
    }
});
