//! The custom ids Docobo puts on its components, modals and modal inputs, typed. They are
//! parsed once, where an interaction arrives ([`super::handler`]), and written with
//! `Display` where a view is built; the wire strings (`setup:prices:0`, `price:3000`) are
//! part of the messages already posted, so they never change.

use std::fmt;

use crate::domain::{GuildId, RoleId};

/// A component's or a modal's custom id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CustomId {
    /// A step of `/setup` (`setup:…`).
    Setup(SetupId),
    /// `join:role`: the role picked in `/join`.
    JoinRole,
    /// `doctor:test`: `/doctor`'s Test purchase button.
    DoctorTest,
    /// `reminders:off:{guild}` / `reminders:on:{guild}`: the buttons of a reminder (a direct
    /// message, so the guild is in the id).
    Reminders { guild: GuildId, on: bool },
}

/// The `/setup` steps' ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SetupId {
    /// `setup:roles`: the role select.
    Roles,
    /// `setup:prices:{page}`: the button that opens a page of prices, and that modal.
    Prices(usize),
    /// `setup:provider`: the provider select.
    Provider,
    /// `setup:creds:{page}`: the button that opens a page of credentials, and that modal.
    Creds(usize),
    /// `setup:log`: the log channel select.
    Log,
    /// `setup:verify`: "Verify now", which waits for the next webhook delivery.
    Verify,
}

impl CustomId {
    /// The id Docobo wrote, or `None` for anything else.
    pub(super) fn parse(text: &str) -> Option<Self> {
        if text == "join:role" {
            return Some(Self::JoinRole);
        }
        if text == "doctor:test" {
            return Some(Self::DoctorTest);
        }
        if let Some(rest) = text.strip_prefix("reminders:") {
            let (on, guild) = match rest.split_once(':')? {
                ("on", guild) => (true, guild),
                ("off", guild) => (false, guild),
                _ => return None,
            };
            let guild = GuildId::parse(guild)
                .ok()
                .filter(|g| g.to_string() == guild)?;
            return Some(Self::Reminders { guild, on });
        }
        let step = text.strip_prefix("setup:")?;
        let id = match step {
            "roles" => SetupId::Roles,
            "provider" => SetupId::Provider,
            "log" => SetupId::Log,
            "verify" => SetupId::Verify,
            _ => {
                if let Some(page) = step.strip_prefix("prices:") {
                    SetupId::Prices(page_number(page)?)
                } else {
                    SetupId::Creds(page_number(step.strip_prefix("creds:")?)?)
                }
            }
        };
        Some(Self::Setup(id))
    }
}

/// A page number as Docobo writes it: decimal digits only (no sign, no spaces, no leading
/// zero: `01` would read as page 1 and not write back as the id it came from).
fn page_number(text: &str) -> Option<usize> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for CustomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JoinRole => f.write_str("join:role"),
            Self::DoctorTest => f.write_str("doctor:test"),
            Self::Reminders { guild, on } => {
                write!(f, "reminders:{}:{guild}", if *on { "on" } else { "off" })
            }
            Self::Setup(SetupId::Roles) => f.write_str("setup:roles"),
            Self::Setup(SetupId::Prices(page)) => write!(f, "setup:prices:{page}"),
            Self::Setup(SetupId::Provider) => f.write_str("setup:provider"),
            Self::Setup(SetupId::Creds(page)) => write!(f, "setup:creds:{page}"),
            Self::Setup(SetupId::Log) => f.write_str("setup:log"),
            Self::Setup(SetupId::Verify) => f.write_str("setup:verify"),
        }
    }
}

impl From<SetupId> for CustomId {
    fn from(id: SetupId) -> Self {
        Self::Setup(id)
    }
}

/// A modal input's custom id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InputId {
    /// `price:{role}`: the price typed for a role.
    Price(RoleId),
    /// `cred:{key}`: a provider's credential field.
    Cred(String),
}

impl InputId {
    pub(super) fn parse(text: &str) -> Option<Self> {
        if let Some(role) = text.strip_prefix("price:") {
            return RoleId::parse(role)
                .ok()
                // Only the canonical form: the id must read back the same.
                .filter(|r| r.to_string() == role)
                .map(Self::Price);
        }
        let key = text.strip_prefix("cred:")?;
        (!key.is_empty()).then(|| Self::Cred(key.to_owned()))
    }
}

impl fmt::Display for InputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Price(role) => write!(f, "price:{role}"),
            Self::Cred(key) => write!(f, "cred:{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_byte_for_byte() {
        for (wire, id) in [
            ("setup:roles", CustomId::Setup(SetupId::Roles)),
            ("setup:prices:0", CustomId::Setup(SetupId::Prices(0))),
            ("setup:prices:12", CustomId::Setup(SetupId::Prices(12))),
            ("setup:provider", CustomId::Setup(SetupId::Provider)),
            ("setup:creds:0", CustomId::Setup(SetupId::Creds(0))),
            ("setup:creds:3", CustomId::Setup(SetupId::Creds(3))),
            ("setup:log", CustomId::Setup(SetupId::Log)),
            ("setup:verify", CustomId::Setup(SetupId::Verify)),
            ("join:role", CustomId::JoinRole),
            ("doctor:test", CustomId::DoctorTest),
            (
                "reminders:off:42",
                CustomId::Reminders {
                    guild: GuildId::new(42).expect("guild"),
                    on: false,
                },
            ),
            (
                "reminders:on:42",
                CustomId::Reminders {
                    guild: GuildId::new(42).expect("guild"),
                    on: true,
                },
            ),
        ] {
            assert_eq!(CustomId::parse(wire), Some(id.clone()), "{wire}");
            assert_eq!(id.to_string(), wire);
        }
    }

    #[test]
    fn other_custom_ids_are_not_ours() {
        for wire in [
            "",
            "setup:",
            "setup:rolesx",
            "setup:prices:",
            "setup:prices:-1",
            "setup:prices:+1",
            "setup:prices: 1",
            "setup:prices:1x",
            "setup:prices:01",
            "setup:creds:00",
            "setup:prices:99999999999999999999999",
            "setup:creds",
            "setup:unknown:1",
            "join:role:1",
            "doctor:",
            "doctor:test:1",
            "join:",
            "other:roles",
            "SETUP:roles",
            "reminders:off",
            "reminders:off:",
            "reminders:off:042",
            "reminders:maybe:42",
            "reminders:on:x",
        ] {
            assert_eq!(CustomId::parse(wire), None, "{wire:?}");
        }
    }

    #[test]
    fn input_ids_round_trip_byte_for_byte() {
        let role = RoleId::new(3000).expect("role");
        for (wire, id) in [
            ("price:3000", InputId::Price(role)),
            ("cred:access_token", InputId::Cred("access_token".into())),
            ("cred:a:b", InputId::Cred("a:b".into())),
        ] {
            assert_eq!(InputId::parse(wire), Some(id.clone()), "{wire}");
            assert_eq!(id.to_string(), wire);
        }
        for wire in [
            "price:",
            "price:0",
            "price: 3000",
            "price:x",
            "cred:",
            "x:1",
        ] {
            assert_eq!(InputId::parse(wire), None, "{wire:?}");
        }
    }
}
