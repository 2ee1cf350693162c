//! Typed values out of the raw layers, and the problems found on the way. Every problem is
//! recorded with the rank of the key it is about; [`Reader::finish`] lists the sources'
//! problems first, then the keys' in rank order, then the keys nobody read.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::SecretString;

use super::keys::{KEYS, Key, PROVIDERS_RANK};
use super::sources::{RawValue, Raws};
use super::{ConfigProblem, Purpose};

/// The rank of problems found while reading the file and the environment (listed first).
const SOURCE_RANK: u8 = 0;
/// The rank of keys nobody read (listed last).
const UNKNOWN_RANK: u8 = u8::MAX;

/// A problem with the value was recorded; there is no value.
#[derive(Debug)]
pub(super) struct Reported;

/// The message for a value that should have been text. Names only the type found, never
/// the value (it may be a secret).
fn expected_text(found: &toml::Value) -> String {
    format!(
        "expected text, found {}. Fix: quote the value",
        found.type_str()
    )
}

/// Reads typed values out of the raw layers, collecting problems.
pub(super) struct Reader {
    raw: Raws,
    /// What the command needs (some keys are required only for some commands).
    purpose: Purpose,
    used: BTreeSet<(String, String)>,
    /// Each problem with the rank of the key it is about.
    problems: Vec<(u8, ConfigProblem)>,
}

impl Reader {
    /// `problems`: those found while reading the file and the environment.
    pub(super) fn new(raw: Raws, problems: Vec<ConfigProblem>, purpose: Purpose) -> Self {
        Self {
            raw,
            purpose,
            used: BTreeSet::new(),
            problems: problems.into_iter().map(|p| (SOURCE_RANK, p)).collect(),
        }
    }

    /// Every problem: the sources', then the keys' in rank order, then the keys nobody read.
    pub(super) fn finish(mut self) -> Vec<ConfigProblem> {
        self.report_unknown();
        // A stable sort: one key's problems keep the order they were found in.
        self.problems.sort_by_key(|(rank, _)| *rank);
        self.problems.into_iter().map(|(_, p)| p).collect()
    }

    pub(super) fn purpose(&self) -> Purpose {
        self.purpose
    }

    pub(super) fn take(&mut self, key: &Key) -> Option<RawValue> {
        let id = (key.section.to_owned(), key.name.to_owned());
        let value = self.raw.get(&id).map(|r| r.value.clone());
        self.used.insert(id);
        value
    }

    pub(super) fn problem(&mut self, key: &Key, message: String) -> Reported {
        let origin = self
            .raw
            .get(&(key.section.to_owned(), key.name.to_owned()))
            .map(|r| r.origin.clone());
        self.problems.push((
            key.rank,
            ConfigProblem {
                key: key.id(),
                origin,
                message,
            },
        ));
        Reported
    }

    /// A text value as given (`None` when absent); a problem when it is not text.
    pub(super) fn string(&mut self, key: &Key) -> Result<Option<String>, Reported> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::Env(s) | RawValue::Toml(toml::Value::String(s))) => Ok(Some(s)),
            Some(RawValue::Toml(other)) => Err(self.problem(key, expected_text(&other))),
        }
    }

    /// A text value; `default` when absent or blank.
    pub(super) fn text(&mut self, key: &Key, default: &str) -> Result<String, Reported> {
        Ok(self
            .string(key)?
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| default.to_owned()))
    }

    /// A list of strings; from the environment, comma-separated.
    pub(super) fn text_list(
        &mut self,
        key: &Key,
        default: &[&str],
    ) -> Result<Vec<String>, Reported> {
        match self.take(key) {
            None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
            Some(RawValue::Env(s)) => Ok(s
                .split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect()),
            Some(RawValue::Toml(toml::Value::Array(values))) => {
                let mut items = Vec::new();
                for value in values {
                    if let toml::Value::String(s) = value {
                        items.push(s);
                    } else {
                        return Err(self.problem(key, format!("expected a list of strings, found a {} in it. Fix: quote every entry", value.type_str())));
                    }
                }
                Ok(items)
            }
            Some(RawValue::Toml(other)) => Err(self.problem(
                key,
                format!(
                    "expected a list, found {}. Fix: write [\"…\", \"…\"]",
                    other.type_str()
                ),
            )),
        }
    }

    /// `[providers.<id>]` tables: operator-level plugin credentials, every value a secret.
    pub(super) fn provider_credentials(
        &mut self,
    ) -> Option<BTreeMap<String, Vec<(String, SecretString)>>> {
        let ids: Vec<(String, String)> = self
            .raw
            .keys()
            .filter(|(section, _)| section == "providers")
            .cloned()
            .collect();
        let mut out: BTreeMap<String, Vec<(String, SecretString)>> = BTreeMap::new();
        let mut ok = true;
        for (section, key) in ids {
            self.used.insert((section.clone(), key.clone()));
            let Some(raw) = self.raw.get(&(section, key.clone())).cloned() else {
                continue;
            };
            let mut problem = |key: String, message: String| {
                let origin = Some(raw.origin.clone());
                self.problems.push((
                    PROVIDERS_RANK,
                    ConfigProblem {
                        key,
                        origin,
                        message,
                    },
                ));
                ok = false;
            };
            match raw.value {
                // From the file: `[providers.polar]` is a table under `providers`.
                RawValue::Toml(toml::Value::Table(table)) => {
                    for (field, value) in table {
                        if let toml::Value::String(text) = value {
                            out.entry(key.clone())
                                .or_default()
                                .push((field, SecretString::from(text)));
                        } else {
                            problem(format!("providers.{key}.{field}"), expected_text(&value));
                        }
                    }
                }
                // From the environment: DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET.
                RawValue::Env(text) => {
                    if let Some((provider, field)) = key.split_once("__") {
                        out.entry(provider.to_owned())
                            .or_default()
                            .push((field.to_owned(), SecretString::from(text)));
                    } else {
                        problem(format!("providers.{key}"), "Fix: name provider settings DOCOBO_PROVIDERS__<PROVIDER>__<FIELD>, e.g. DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET".into());
                    }
                }
                RawValue::Toml(other) => {
                    problem(
                        format!("providers.{key}"),
                        format!(
                            "expected a [providers.{key}] table, found {}. Fix: see docobo.example.toml",
                            other.type_str()
                        ),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// Keys nobody read: typos, or settings from a newer version.
    fn report_unknown(&mut self) {
        let unknown: Vec<_> = self
            .raw
            .iter()
            .filter(|(id, _)| !self.used.contains(*id))
            .map(|((s, k), raw)| (format!("{s}.{k}"), raw.origin.clone()))
            .collect();
        for (key, origin) in unknown {
            // Named as it was given: `server.port` in the file, `DOCOBO_SERVER__PORT` in the
            // environment.
            let from_env = origin.starts_with("env ");
            let hint = closest_key(&key)
                .map(|k| {
                    let name = if from_env { k.env_name() } else { k.id() };
                    format!(" Did you mean {name}?")
                })
                .unwrap_or_default();
            self.problems.push((
                UNKNOWN_RANK,
                ConfigProblem {
                    key,
                    origin: Some(origin),
                    message: format!("is not a Docobo setting.{hint} Fix: remove it or see docobo.example.toml for every setting"),
                },
            ));
        }
    }
}

/// The known key closest to a misspelt one (by edit distance over `section.key`).
fn closest_key(wrong: &str) -> Option<&'static Key> {
    KEYS.iter()
        .map(|known| (strsim::damerau_levenshtein(wrong, &known.id()), known))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}
