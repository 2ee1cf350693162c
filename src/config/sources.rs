//! The raw layers: the TOML file, then `DOCOBO_…` environment variables, then
//! `DOCOBO_…_FILE` files for secrets. Later layers win. Nothing here knows a key's type; the
//! reader does.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigProblem;
use super::keys::{KEYS, Kind, is_secret};

/// Every raw value by `(section, key)`.
pub(super) type Raws = BTreeMap<(String, String), Raw>;

/// A raw value and where it came from. No `Debug`: the value may be a secret.
#[derive(Clone)]
pub(super) struct Raw {
    pub(super) value: RawValue,
    pub(super) origin: String,
}

#[derive(Clone)]
pub(super) enum RawValue {
    Toml(toml::Value),
    /// From the environment: text, converted to the key's kind.
    Env(String),
}

/// Reads the file (if any) and the environment, collecting their problems.
pub(super) fn read(
    file: Option<&Path>,
    file_required: bool,
    env: impl IntoIterator<Item = (String, String)>,
) -> (Raws, Vec<ConfigProblem>) {
    let mut raw = Raws::new();
    let mut problems = Vec::new();
    if let Some(path) = file {
        read_file(path, file_required, &mut raw, &mut problems);
    }
    read_env(env, &mut raw, &mut problems);
    (raw, problems)
}

fn read_file(path: &Path, required: bool, raw: &mut Raws, problems: &mut Vec<ConfigProblem>) {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return,
        Err(e) => {
            problems.push(ConfigProblem {
                key: shown,
                origin: None,
                message: format!(
                    "cannot read the configuration file: {e}. Fix: create it (copy docobo.example.toml) or pass --config with the right path"
                ),
            });
            return;
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            problems.push(ConfigProblem {
                key: shown,
                origin: None,
                message: format!("is not valid TOML: {}", e.to_string().trim()),
            });
            return;
        }
    };
    for (section, value) in table {
        let toml::Value::Table(entries) = value else {
            problems.push(ConfigProblem {
                key: section.clone(),
                origin: Some(shown.clone()),
                message: format!(
                    "expected a [{section}] table. Fix: see docobo.example.toml for the layout"
                ),
            });
            continue;
        };
        for (key, value) in entries {
            raw.insert(
                (section.clone(), key),
                Raw {
                    value: RawValue::Toml(value),
                    origin: shown.clone(),
                },
            );
        }
    }
}

/// The setting `rest` (a variable's name after `DOCOBO_`) names with one underscore between
/// its section and key instead of two (`SERVER_PORT`, `DISCORD_TOKEN_FILE`), as the variable
/// it should be (`DOCOBO_SERVER__PORT`).
fn one_underscore_setting(rest: &str) -> Option<String> {
    KEYS.iter().find_map(|key| {
        let env_name = key.env_name();
        let two = env_name.strip_prefix("DOCOBO_")?;
        let one = two.replacen("__", "_", 1);
        if rest.eq_ignore_ascii_case(&one) {
            Some(env_name)
        } else if key.kind == Kind::Secret && rest.eq_ignore_ascii_case(&format!("{one}_FILE")) {
            Some(format!("{env_name}_FILE"))
        } else {
            None
        }
    })
}

fn read_env(
    env: impl IntoIterator<Item = (String, String)>,
    raw: &mut Raws,
    problems: &mut Vec<ConfigProblem>,
) {
    // `_FILE` variables are applied after plain ones, so they win (file < env < _FILE).
    let mut files = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("DOCOBO_") else {
            continue;
        };
        // Settings have two underscores between section and key. Any other `DOCOBO_…`
        // variable belongs to someone else (`DOCOBO_CONFIG`, a script's `DOCOBO_BIN`, the
        // tests' `DOCOBO_PLUGINS_OUT`), unless it is a setting's name with one underscore.
        let Some((section, key)) = rest.split_once("__") else {
            if let Some(setting) = one_underscore_setting(rest) {
                problems.push(ConfigProblem {
                    key: name.clone(),
                    origin: Some(format!("env {name}")),
                    message: format!("is not a Docobo setting: settings take two underscores between the section and the key. Did you mean {setting}? Fix: rename it {setting}"),
                });
            }
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if let Some(key) = key.strip_suffix("_file") {
            files.push((section, key.to_owned(), name, value));
            continue;
        }
        raw.insert(
            (section, key),
            Raw {
                value: RawValue::Env(value),
                origin: format!("env {name}"),
            },
        );
    }
    for (section, key, name, path) in files {
        if !(section == "providers" || is_secret(&section, &key)) {
            problems.push(ConfigProblem {
                key: format!("{section}.{key}"),
                origin: Some(format!("env {name}")),
                message:
                    "only secrets can be read from a _FILE variable. Fix: set the value directly"
                        .into(),
            });
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                raw.insert(
                    (section, key),
                    Raw {
                        value: RawValue::Env(text.trim_end_matches(['\n', '\r']).to_owned()),
                        origin: format!("env {name}"),
                    },
                );
            }
            Err(e) => problems.push(ConfigProblem {
                key: format!("{section}.{key}"),
                origin: Some(format!("env {name}")),
                message: format!("cannot read {path}: {e}. Fix: point {name} at a readable file"),
            }),
        }
    }
}
