//! Typed Discord snowflakes and provider ids.
//!
//! A snowflake is a 64-bit integer that Discord sends as a decimal string. It must never pass
//! through an `f64` (snowflakes exceed 2^53), so the only ways in are [`Id::parse`] and
//! [`Id::new`]. The marker type stops a role id from being passed where a user id is wanted.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use super::ValidationError;

/// A Discord snowflake for one kind of object (`M` is a marker type).
pub struct Id<M> {
    value: u64,
    marker: PhantomData<fn() -> M>,
}

/// Marker for guild (server) ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GuildMarker {}
/// Marker for user ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserMarker {}
/// Marker for role ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleMarker {}
/// Marker for channel ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelMarker {}

/// A Discord server.
pub type GuildId = Id<GuildMarker>;
/// A Discord user.
pub type UserId = Id<UserMarker>;
/// A Discord role.
pub type RoleId = Id<RoleMarker>;
/// A Discord channel.
pub type ChannelId = Id<ChannelMarker>;

impl<M> Id<M> {
    /// Wraps a snowflake.
    ///
    /// # Errors
    /// Zero is not a valid snowflake, and values above `i64::MAX` cannot be stored in SQLite's
    /// INTEGER (Discord will not reach them before the 2080s).
    pub fn new(value: u64) -> Result<Self, ValidationError> {
        if value == 0 || i64::try_from(value).is_err() {
            return Err(ValidationError::new(
                "id",
                format!("{value} is not a Discord id (expected 1..=2^63-1)"),
            ));
        }
        Ok(Self {
            value,
            marker: PhantomData,
        })
    }

    /// Parses the decimal string form Discord uses, exactly as Discord writes it.
    ///
    /// # Errors
    /// Anything but 1 to 19 ASCII digits without a leading zero (`042` or ` 42` would name
    /// a different text than the id they read as) naming a valid snowflake (1..=2^63-1).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new(
                "id",
                format!(
                    "{:?} is not a Discord id (expected only digits, e.g. 112233445566778899)",
                    shorten(text)
                ),
            ));
        }
        if text.len() > 1 && text.starts_with('0') {
            return Err(ValidationError::new(
                "id",
                format!("{text:?} is not a Discord id (Discord ids have no leading zeros)"),
            ));
        }
        let value = text.parse::<u64>().map_err(|_| {
            ValidationError::new(
                "id",
                format!("{:?} is too large to be a Discord id", shorten(text)),
            )
        })?;
        Self::new(value)
    }

    /// The raw value.
    #[must_use]
    pub fn get(self) -> u64 {
        self.value
    }

    /// The value as SQLite stores it (always fits: checked on construction).
    #[must_use]
    pub fn as_i64(self) -> i64 {
        self.value as i64
    }

    /// Reads a value that SQLite stored.
    ///
    /// # Errors
    /// A zero or negative value (a corrupt row).
    pub fn from_i64(value: i64) -> Result<Self, ValidationError> {
        u64::try_from(value)
            .map_err(|_| ValidationError::new("id", format!("{value} is not a Discord id")))
            .and_then(Self::new)
    }
}

// Manual impls: derives would demand the same traits of the marker type.
impl<M> Clone for Id<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Id<M> {}
impl<M> PartialEq for Id<M> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<M> Eq for Id<M> {}
impl<M> std::hash::Hash for Id<M> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}
impl<M> PartialOrd for Id<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Id<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl<M> fmt::Debug for Id<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.value)
    }
}
impl<M> fmt::Display for Id<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.value, f)
    }
}
impl<M> FromStr for Id<M> {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl<M> serde::Serialize for Id<M> {
    /// Serialized as a string, as Discord does, so JavaScript readers keep every digit.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.value)
    }
}
impl<'de, M> serde::Deserialize<'de> for Id<M> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// At most 40 characters of `text`, for an error message (an id can be any length).
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// A payment provider's id, as a plugin declares it (`polar`, `sepay`): `[a-z0-9-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl ProviderId {
    /// # Errors
    /// Empty, longer than 32 characters, or not lower-case ASCII letters, digits and `-`.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let ok = !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValidationError::new(
                "provider",
                format!(
                    "{:?} is not a provider id (expected 1-32 of a-z, 0-9 and -)",
                    shorten(text)
                ),
            ))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflakes_round_trip_through_their_string_form_without_losing_digits() {
        // 2^53 + 1 cannot be represented by an f64.
        let id = UserId::parse("9007199254740993").expect("valid");
        assert_eq!(id.get(), 9_007_199_254_740_993);
        assert_eq!(id.to_string(), "9007199254740993");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, "\"9007199254740993\"");
        let back: UserId = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, id);
    }

    #[test]
    fn junk_zero_and_overflowing_ids_are_refused() {
        for bad in [
            "",
            "abc",
            "-1",
            "0",
            "1.5",
            "1e18",
            "99999999999999999999",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
        ] {
            assert!(GuildId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            GuildId::parse("9223372036854775807")
                .expect("i64::MAX")
                .as_i64(),
            i64::MAX
        );
        assert!(RoleId::from_i64(-5).is_err());
        assert_eq!(RoleId::from_i64(7).expect("positive").as_i64(), 7);
    }

    #[test]
    fn only_the_text_discord_writes_is_an_id() {
        // Each of these reads as a valid number, but is not how Discord writes one: the
        // text stored beside the id (a provider's metadata) would say something else.
        for lie in [
            " 42", "42 ", " 42 ", "042", "00", "42\n", "\t42", "+42", "4_2", "٤٢",
        ] {
            let err = UserId::parse(lie).expect_err(lie);
            assert_eq!(err.field, "id", "{lie:?}");
            assert!(err.message.contains("Discord id"), "{lie:?}: {err}");
        }
        // Serde (the bot's own JSON) goes through the same door.
        assert!(serde_json::from_str::<UserId>("\" 42\"").is_err());
        // A huge input is not echoed whole.
        let huge = "9".repeat(10_000);
        assert!(UserId::parse(&huge).expect_err("huge").message.len() < 200);
    }

    #[test]
    fn provider_ids_with_control_characters_or_too_long_are_refused() {
        for bad in [
            "polar\n",
            "po\0lar",
            "\u{7f}",
            "sepay\r\n",
            "polar\u{202e}",
            "pólar",
            " polar",
            "a".repeat(33).as_str(),
        ] {
            let err = ProviderId::parse(bad).expect_err(bad);
            assert_eq!(err.field, "provider");
        }
        assert!(ProviderId::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn provider_ids_are_restricted_to_url_safe_names() {
        assert!(ProviderId::parse("polar").is_ok());
        assert!(ProviderId::parse("my-bank2").is_ok());
        for bad in ["", "Polar", "a/b", "x".repeat(33).as_str()] {
            assert!(ProviderId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
