//! Who may see the dashboard: one-time login links minted by `/dashboard` in Discord (one
//! guild each), the operator's admin token (every guild), and the sessions they open.
//!
//! Links and sessions live in memory only. A link is `<id>.<expiry>.<guild>.<user>.<mac>`,
//! HMAC-SHA256 under a key drawn at start: a restart (or an expiry, [`LINK_TTL_MS`])
//! invalidates every link, and a link is spent by its first use. A session is 32 random bytes
//! (the cookie), with its own CSRF token; it ends at logout, at its expiry, or at a restart.
//! Nothing about sessions is written to disk, so there is nothing to leak from a backup.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::domain::{GuildId, UnixMillis, UserId, hex};

/// How long a login link from `/dashboard` stays usable.
pub const LINK_TTL_MS: i64 = 10 * 60 * 1000;

/// What a session may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One guild, for a member with Manage Server who asked `/dashboard` there.
    Guild { guild: GuildId, user: UserId },
    /// Every guild: the operator, logged in with the admin token.
    Operator,
}

impl Scope {
    /// Whether this session may see `guild`.
    #[must_use]
    pub fn sees(&self, guild: GuildId) -> bool {
        match self {
            Self::Guild { guild: own, .. } => *own == guild,
            Self::Operator => true,
        }
    }
}

/// An open session.
#[derive(Debug, Clone)]
pub struct Session {
    pub scope: Scope,
    /// Sent back with every form; a POST without it is refused.
    pub csrf: String,
    pub expires_at: UnixMillis,
}

/// Why a login was refused (shown to the person, without detail an attacker could use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("this login link is not valid: run /dashboard in your server for a new one")]
    BadLink,
    #[error("this login link has expired: run /dashboard in your server for a new one")]
    Expired,
    #[error("this login link was already used: run /dashboard in your server for a new one")]
    Used,
    #[error("wrong admin token")]
    BadToken,
    #[error("the operator login is off: set dashboard.admin_token_hash (see `docobo hash-token`)")]
    NoToken,
}

type HmacSha256 = Hmac<Sha256>;

/// The login links and sessions of this process.
#[derive(Debug)]
pub struct Logins {
    key: [u8; 32],
    clock: Clock,
    session_ms: i64,
    /// SHA-256 of the operator's admin token, when operator login is on.
    admin_token_hash: Option<[u8; 32]>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Link ids already used, with their expiry (forgotten once expired).
    spent: HashMap<String, UnixMillis>,
    sessions: HashMap<String, Session>,
}

impl Logins {
    /// `admin_token_hash`: the hex SHA-256 printed by `docobo hash-token`, checked when the
    /// configuration is read.
    #[must_use]
    pub fn new(clock: Clock, session_ms: i64, admin_token_hash: Option<[u8; 32]>) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            key,
            clock,
            session_ms,
            admin_token_hash,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mac(&self, text: &str) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A one-time link token for `user`, who has Manage Server in `guild`.
    #[must_use]
    pub fn mint_link(&self, guild: GuildId, user: UserId) -> String {
        let id = random_hex(16);
        let expires = self.clock.now_ms() + LINK_TTL_MS;
        let body = format!("{id}.{expires}.{}.{}", guild.get(), user.get());
        let mac = hex(&self.mac(&body));
        format!("{body}.{mac}")
    }

    /// Checks a link token without spending it (the page that asks to continue).
    ///
    /// # Errors
    /// The token is forged, expired or spent.
    pub fn check_link(&self, token: &str) -> Result<Scope, LoginError> {
        let (id, expires, scope) = self.parse_link(token)?;
        if self.clock.now_ms() >= expires {
            return Err(LoginError::Expired);
        }
        if self.state().spent.contains_key(&id) {
            return Err(LoginError::Used);
        }
        Ok(scope)
    }

    /// Spends a link token and opens its session.
    ///
    /// # Errors
    /// The token is forged, expired or already spent.
    pub fn redeem_link(&self, token: &str) -> Result<(String, Session), LoginError> {
        let (id, expires, scope) = self.parse_link(token)?;
        let now = self.clock.now_ms();
        if now >= expires {
            return Err(LoginError::Expired);
        }
        let mut state = self.state();
        state.spent.retain(|_, until| *until > now);
        if state.spent.insert(id, expires).is_some() {
            return Err(LoginError::Used);
        }
        Ok(Self::open(&mut state, scope, now + self.session_ms))
    }

    /// Opens an operator session for the admin token.
    ///
    /// # Errors
    /// Operator login is off, or the token is wrong.
    pub fn login_operator(&self, token: &str) -> Result<(String, Session), LoginError> {
        let Some(expected) = self.admin_token_hash else {
            return Err(LoginError::NoToken);
        };
        let given: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        if !bool::from(given.ct_eq(&expected)) {
            return Err(LoginError::BadToken);
        }
        let expires = self.clock.now_ms() + self.session_ms;
        Ok(Self::open(&mut self.state(), Scope::Operator, expires))
    }

    fn open(state: &mut State, scope: Scope, expires_at: i64) -> (String, Session) {
        let session = Session {
            scope,
            csrf: random_hex(32),
            expires_at,
        };
        let id = random_hex(32);
        state.sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session behind a cookie value, if it is open and not expired.
    #[must_use]
    pub fn session(&self, id: &str) -> Option<Session> {
        let now = self.clock.now_ms();
        let mut state = self.state();
        state.sessions.retain(|_, s| s.expires_at > now);
        state.sessions.get(id).cloned()
    }

    /// Ends one session (logout).
    pub fn end(&self, id: &str) {
        self.state().sessions.remove(id);
    }

    /// Ends every session of `guild` (or all, for `None`); returns how many ended.
    pub fn end_all(&self, guild: Option<GuildId>) -> usize {
        let mut state = self.state();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| match (guild, s.scope) {
            (None, _) => false,
            (Some(g), Scope::Guild { guild, .. }) => guild != g,
            (Some(_), Scope::Operator) => true,
        });
        before - state.sessions.len()
    }

    fn parse_link(&self, token: &str) -> Result<(String, i64, Scope), LoginError> {
        let Some((body, mac)) = token.rsplit_once('.') else {
            return Err(LoginError::BadLink);
        };
        let expected = hex(&self.mac(body));
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(LoginError::BadLink);
        }
        let parts: Vec<&str> = body.split('.').collect();
        let [id, expires, guild, user] = parts.as_slice() else {
            return Err(LoginError::BadLink);
        };
        let parse = |s: &str| s.parse::<u64>().map_err(|_| LoginError::BadLink);
        let guild = GuildId::new(parse(guild)?).map_err(|_| LoginError::BadLink)?;
        let user = UserId::new(parse(user)?).map_err(|_| LoginError::BadLink)?;
        let expires = expires.parse::<i64>().map_err(|_| LoginError::BadLink)?;
        Ok(((*id).to_owned(), expires, Scope::Guild { guild, user }))
    }
}

/// Whether two CSRF tokens are equal, in constant time.
#[must_use]
pub fn csrf_matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| bool::from(expected.as_bytes().ct_eq(g.as_bytes())))
}

/// A new admin token and its hash, for `docobo hash-token`.
#[must_use]
pub fn new_admin_token() -> (String, String) {
    let token = format!("docobo_admin_{}", random_hex(32));
    let hash = hash_token(&token);
    (token, hash)
}

/// The hex SHA-256 of a token (trimmed), as `dashboard.admin_token_hash` holds it. The token
/// is 256 random bits, so a fast hash is enough: there is nothing to brute-force.
#[must_use]
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.trim().as_bytes()))
}

/// Reads `dashboard.admin_token_hash`: 64 hex digits.
#[must_use]
pub fn parse_token_hash(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> (Logins, Clock) {
        let clock = Clock::fixed(1_000_000);
        let hash = parse_token_hash(&hash_token("secret-token")).expect("hash");
        (Logins::new(clock.clone(), 3_600_000, Some(hash)), clock)
    }

    fn ids() -> (GuildId, UserId) {
        (
            GuildId::new(2000).expect("guild"),
            UserId::new(4000).expect("user"),
        )
    }

    #[test]
    fn a_link_opens_one_session_for_its_guild_only_once() {
        let (logins, _) = logins();
        let (guild, user) = ids();
        let link = logins.mint_link(guild, user);
        assert_eq!(logins.check_link(&link), Ok(Scope::Guild { guild, user }));
        let (id, session) = logins.redeem_link(&link).expect("first use");
        assert!(session.scope.sees(guild));
        assert!(!session.scope.sees(GuildId::new(2001).expect("other")));
        assert!(logins.session(&id).is_some());
        assert_eq!(logins.redeem_link(&link).err(), Some(LoginError::Used));
        assert_eq!(logins.check_link(&link).err(), Some(LoginError::Used));
    }

    #[test]
    fn a_forged_or_expired_link_is_refused() {
        let (logins, clock) = logins();
        let (guild, user) = ids();
        let link = logins.mint_link(guild, user);
        let other_guild = link.replacen(".2000.", ".2001.", 1);
        assert_eq!(
            logins.redeem_link(&other_guild).err(),
            Some(LoginError::BadLink)
        );
        assert_eq!(
            logins.redeem_link("nonsense").err(),
            Some(LoginError::BadLink)
        );
        clock.advance(LINK_TTL_MS);
        assert_eq!(logins.redeem_link(&link).err(), Some(LoginError::Expired));
    }

    #[test]
    fn sessions_expire_and_end_at_logout() {
        let (logins, clock) = logins();
        let (id, _) = logins.login_operator("secret-token").expect("operator");
        assert_eq!(
            logins.login_operator("wrong").err(),
            Some(LoginError::BadToken)
        );
        let (other, _) = logins.login_operator(" secret-token\n").expect("trimmed");
        logins.end(&other);
        assert!(logins.session(&other).is_none());
        clock.advance(3_600_000);
        assert!(logins.session(&id).is_none(), "expired");
    }
}
