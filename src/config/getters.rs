//! The getters: how the key table in `keys.rs` says how each key is read (its default, its
//! bounds, its check) and, through the field's type, what it yields.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use secrecy::SecretString;

use super::Purpose;
use super::keys::{Key, Kind};
use super::reader::{Reader, Reported};
use super::sources::RawValue;

/// How a key's value is read: the default and the checks.
pub(super) trait Getter<T> {
    const KIND: Kind;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<T, Reported>;
}

/// Text; the default when unset or blank.
pub(super) struct Text(pub(super) &'static str);

/// Text (the default when unset or blank) turned into a value by a check that says, when it
/// fails, what is wrong and how to fix it.
pub(super) struct Parsed<T>(
    pub(super) &'static str,
    pub(super) fn(&str) -> Result<T, String>,
);

/// An optional http(s) URL, without its trailing slashes. The text is the fix shown when the
/// value is not one.
pub(super) struct HttpUrl(pub(super) &'static str);

/// A whole number within `range`.
pub(super) struct Whole {
    pub(super) default: i64,
    pub(super) range: RangeInclusive<i64>,
}

/// `true` or `false` (from the environment also yes/no, on/off, 1/0).
pub(super) struct Flag(pub(super) bool);

/// Host names (lower-cased); from the environment, comma-separated.
pub(super) struct Hosts(pub(super) &'static [&'static str]);

/// IP addresses or networks (`10.0.0.0/8`); none by default.
pub(super) struct Networks;

/// An optional secret (`Option<SecretString>`). Its value never appears in a problem.
pub(super) struct Secret;

/// An optional secret URL (a Discord webhook's holds its token): https, or plain http to a
/// loopback address (tests). Neither the value nor any part of it appears in a problem.
pub(super) struct SecretUrl;

/// A secret only the commands that talk to Discord need (the bot token): required when the
/// configuration is loaded for [`Purpose::Discord`], optional otherwise.
pub(super) struct DiscordSecret;

impl<T: From<String>> Getter<T> for Text {
    const KIND: Kind = Kind::Text;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<T, Reported> {
        r.text(key, self.0).map(T::from)
    }
}

impl<T> Getter<T> for Parsed<T> {
    const KIND: Kind = Kind::Text;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<T, Reported> {
        let text = r.text(key, self.0)?;
        (self.1)(text.trim()).map_err(|message| r.problem(key, message))
    }
}

impl Getter<Option<String>> for HttpUrl {
    const KIND: Kind = Kind::Text;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<Option<String>, Reported> {
        let Some(url) = r.string(key)?.filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let trimmed = url.trim_end_matches('/');
        if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
            Ok(Some(trimmed.to_owned()))
        } else {
            let fix = self.0;
            Err(r.problem(key, format!("{url:?} is not an http(s) URL. Fix: {fix}")))
        }
    }
}

impl<T: TryFrom<i64>> Getter<T> for Whole {
    const KIND: Kind = Kind::Integer;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<T, Reported> {
        let (min, max) = (*self.range.start(), *self.range.end());
        let value = match r.take(key) {
            None => self.default,
            Some(RawValue::Toml(toml::Value::Integer(n))) => n,
            Some(RawValue::Env(s)) => s.trim().parse::<i64>().map_err(|_| {
                r.problem(
                    key,
                    format!("{s:?} is not a whole number. Fix: use a number from {min} to {max}"),
                )
            })?,
            Some(RawValue::Toml(other)) => {
                return Err(r.problem(
                    key,
                    format!(
                        "expected a whole number, found {}. Fix: use a number from {min} to {max}",
                        other.type_str()
                    ),
                ));
            }
        };
        match T::try_from(value) {
            Ok(n) if self.range.contains(&value) => Ok(n),
            _ => Err(r.problem(
                key,
                format!("{value} is out of range. Fix: use a number from {min} to {max}"),
            )),
        }
    }
}

impl Getter<bool> for Flag {
    const KIND: Kind = Kind::Bool;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<bool, Reported> {
        match r.take(key) {
            None => Ok(self.0),
            Some(RawValue::Toml(toml::Value::Boolean(b))) => Ok(b),
            Some(RawValue::Env(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(r.problem(
                    key,
                    format!("{s:?} is not true or false. Fix: use true or false"),
                )),
            },
            Some(RawValue::Toml(other)) => Err(r.problem(
                key,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }
}

impl Getter<Vec<String>> for Hosts {
    const KIND: Kind = Kind::List;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<Vec<String>, Reported> {
        let items = r.text_list(key, self.0)?;
        let bad: Vec<&String> = items
            .iter()
            .filter(|h| {
                h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            })
            .collect();
        if !bad.is_empty() {
            return Err(r.problem(key, format!("{bad:?} are not host names. Fix: list bare host names such as api.polar.sh (no scheme, port or path)")));
        }
        Ok(items.into_iter().map(|h| h.to_ascii_lowercase()).collect())
    }
}

impl Getter<Vec<ipnet::IpNet>> for Networks {
    const KIND: Kind = Kind::List;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<Vec<ipnet::IpNet>, Reported> {
        let items = r.text_list(key, &[])?;
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for item in items {
            match item.parse::<ipnet::IpNet>() {
                Ok(net) => nets.push(net),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => nets.push(ipnet::IpNet::from(ip)),
                    Err(_) => bad.push(item),
                },
            }
        }
        if bad.is_empty() {
            Ok(nets)
        } else {
            Err(r.problem(key, format!("{bad:?} are not IP addresses or networks. Fix: use e.g. 127.0.0.1 or 10.0.0.0/8")))
        }
    }
}

impl Getter<Option<SecretString>> for Secret {
    const KIND: Kind = Kind::Secret;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<Option<SecretString>, Reported> {
        Ok(r.string(key)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(SecretString::from))
    }
}

impl Getter<Option<SecretString>> for SecretUrl {
    const KIND: Kind = Kind::Secret;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<Option<SecretString>, Reported> {
        let Some(value) = Secret.read(r, key)? else {
            return Ok(None);
        };
        let ok = url::Url::parse(secrecy::ExposeSecret::expose_secret(&value)).is_ok_and(|u| {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            u.host().is_some() && (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        });
        if ok {
            Ok(Some(value))
        } else {
            Err(r.problem(
                key,
                "is not an https URL (the value is a secret and is not shown). Fix: paste the \
                 webhook URL Discord shows (https://discord.com/api/webhooks/…), or leave it unset"
                    .to_owned(),
            ))
        }
    }
}

impl Getter<Option<SecretString>> for DiscordSecret {
    const KIND: Kind = Kind::Secret;

    fn read(&self, r: &mut Reader, key: &Key) -> Result<Option<SecretString>, Reported> {
        let value = Secret.read(r, key)?;
        if value.is_some() || r.purpose() != Purpose::Discord {
            return Ok(value);
        }
        let (name, section, env_name) = (key.name, key.section, key.env_name());
        Err(r.problem(
            key,
            format!("is required to talk to Discord (`docobo serve`, `docobo invite`, and `docobo check-config`, which checks what `serve` reads; the other commands run without it). Fix: set {name} in [{section}] of docobo.toml, or the environment variable {env_name}, or {env_name}_FILE naming a file that holds it"),
        ))
    }
}
