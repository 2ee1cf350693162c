//! Credential scopes: whose provider account a delivery was verified with, and so whose data
//! it may touch.

use super::GuildId;

/// The credentials that verified a delivery (or a poll), which decide what it may touch.
///
/// Everything a delivery reads or writes is keyed by its scope: its event ids are unique
/// per `(provider, scope)` and the subscriptions it finds by provider id are those created in
/// the same scope. So a guild's deliveries can neither create, change nor deduplicate
/// anything of another guild's, whatever their metadata says; only the operator's may name
/// any guild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/webhooks/{provider}/{webhook_key}`: verified with this guild's credentials; its
    /// events may only touch this guild.
    Guild(GuildId),
    /// `/webhooks/{provider}`: verified with the operator's credentials; the guild comes
    /// from each event.
    Operator,
}

impl Scope {
    /// The operator's key in the `scope` columns.
    pub const OPERATOR: &'static str = "operator";

    /// The value stored in the `scope` columns: `operator`, or the guild id in decimal.
    #[must_use]
    pub fn key(self) -> String {
        match self {
            Self::Guild(g) => g.get().to_string(),
            Self::Operator => Self::OPERATOR.to_owned(),
        }
    }

    /// The guild a guild scope is bound to.
    #[must_use]
    pub fn guild(self) -> Option<GuildId> {
        match self {
            Self::Guild(g) => Some(g),
            Self::Operator => None,
        }
    }

    /// Reads a stored `scope` value; `None` for anything else.
    #[must_use]
    pub fn parse(stored: &str) -> Option<Self> {
        if stored == Self::OPERATOR {
            return Some(Self::Operator);
        }
        let id: u64 = stored.parse().ok()?;
        GuildId::new(id).ok().map(Self::Guild)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_nothing_else_parses() {
        let g = GuildId::new(1_234_567_890_123).expect("guild");
        for scope in [Scope::Operator, Scope::Guild(g)] {
            assert_eq!(Scope::parse(&scope.key()), Some(scope));
        }
        assert_eq!(Scope::Guild(g).key(), "1234567890123");
        for bad in ["", "Operator", "0", "-5", "12a", " 12"] {
            assert_eq!(Scope::parse(bad), None, "{bad:?}");
        }
    }
}
