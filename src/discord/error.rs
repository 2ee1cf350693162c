//! The bot's one error type: what the person is told, and (when it is Docobo's or a
//! provider's fault rather than theirs) the cause for the operator. The cause is logged once,
//! by [`super::reply::send`], where the error is rendered.

use std::borrow::Cow;
use std::fmt;

use crate::db::DbError;

/// What went wrong with an interaction.
#[derive(Debug)]
pub(crate) struct BotError {
    /// Shown to the person (ephemeral). Never a secret.
    pub user: Cow<'static, str>,
    /// Logged at the edge; `None` for a refusal the person can fix (no permission, an
    /// expired `/setup`).
    pub cause: Option<anyhow::Error>,
}

/// What a person is told when Docobo itself failed.
pub(crate) const INTERNAL: &str = "Something went wrong on Docobo's side; the operator can see the details in its log. Try again in a minute.";

impl BotError {
    /// A refusal: the text says why and what to do; nothing for the operator.
    pub(crate) fn refused(user: impl Into<Cow<'static, str>>) -> Self {
        Self {
            user: user.into(),
            cause: None,
        }
    }

    /// Docobo's own failure: the person sees [`INTERNAL`], the operator the cause.
    pub(crate) fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::new(INTERNAL, cause)
    }

    /// A failure with its own text for the person, and a cause for the operator.
    pub(crate) fn new(user: impl Into<Cow<'static, str>>, cause: impl Into<anyhow::Error>) -> Self {
        Self {
            user: user.into(),
            cause: Some(cause.into()),
        }
    }
}

impl From<DbError> for BotError {
    fn from(e: DbError) -> Self {
        Self::internal(e)
    }
}

impl fmt::Display for BotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause:#})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_show_the_generic_text_and_keep_the_cause() {
        let e = BotError::from(DbError::Sqlite(rusqlite::Error::InvalidQuery));
        assert_eq!(e.user, INTERNAL);
        assert!(e.cause.is_some());
        assert!(e.to_string().contains("database error"), "{e}");
        let refused = BotError::refused("no");
        assert!(refused.cause.is_none());
        assert_eq!(refused.to_string(), "no");
    }
}
