//! Alerts made from typed errors: a database error, a plugin failure, a checkout that could
//! not be created. Each says who can fix it: the operator for what runs on the machine (the
//! database, the disk, the plugins' code, a provider's API being down), the guild's staff
//! for what they configured (their credentials).

use super::{Alert, AlertKind, Target};
use crate::checkout::CheckoutError;
use crate::db::DbError;
use crate::domain::{GuildId, Scope};
use crate::providers::{PluginFailure, ProviderError, WebhookRejection};
use crate::services::Services;

/// Tells the operator that the database refused: that it cannot be written at all (disk
/// full, read-only), when the writer says so, else the error itself.
pub fn database_failed(services: &Services, error: &DbError) {
    let alert = match services.db.unwritable() {
        Some((why, fix)) => Alert::new(
            AlertKind::DiskUnwritable,
            Target::Operator,
            format!(
                "the database {} cannot be written: {why}. Webhooks get 500 (providers retry \
                 them) and roles wait until it can.",
                services.db.path().display()
            ),
            fix,
        ),
        None => Alert::new(
            AlertKind::DatabaseError,
            Target::Operator,
            format!("a database operation failed: {error}."),
            "look at the log (level error) around this time; if it repeats, check the disk \
             (`df -h`, `dmesg`) and that only one Docobo uses the database file.",
        ),
    };
    services.alerts.raise(alert);
}

/// Tells whoever can fix it that `provider`'s plugin failed a `call` for `scope`'s
/// credentials. Refusals that are the sender's (a bad signature, a malformed delivery) and
/// "not supported" are not alerts.
pub fn plugin_failed(
    services: &Services,
    provider: &str,
    call: &str,
    scope: Scope,
    error: &ProviderError,
) {
    let name = services
        .providers
        .plugin(provider)
        .map_or_else(|| provider.to_owned(), |p| p.name.clone());
    let owner = scope.guild().map_or(Target::Operator, Target::Guild);
    let (target, cause, fix) = match error {
        ProviderError::Trap { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::OutOfMemory { .. }
        | ProviderError::UnknownProvider(_) => (
            Target::Operator,
            format!("the {name} plugin failed during {call}: {error}."),
            "a bug or a limit in the plugin: update Docobo (built-in plugins) or the plugin \
             file in plugins.dir, or raise plugins.cpu_deadline_ms / call_timeout_ms / \
             memory_limit_mb if it only needs more. Webhooks refused meanwhile are retried."
                .to_owned(),
        ),
        ProviderError::Plugin {
            error: PluginFailure::Upstream(why),
            ..
        } => (
            Target::Operator,
            format!(
                "{name}'s API failed during {call}: {why}. Likely cause: {name} is down or unreachable from this machine."
            ),
            format!(
                "check {name}'s status page and this machine's network; nothing is lost (the poll catches up when {name} answers again)."
            ),
        ),
        ProviderError::Plugin {
            error: PluginFailure::InvalidCredentials(why) | PluginFailure::Misconfigured(why),
            ..
        }
        | ProviderError::Webhook {
            error: WebhookRejection::Misconfigured(why),
            ..
        } => (
            owner,
            format!("{name} refused this server's credentials during {call}: {why}."),
            match owner {
                Target::Guild(_) => format!(
                    "run /setup and enter the {name} credentials again (a token that was revoked or expired needs a new one)."
                ),
                Target::Operator => {
                    format!("fix [providers.{provider}] in docobo.toml and restart Docobo.")
                }
            },
        ),
        ProviderError::Plugin {
            error: PluginFailure::Unsupported(_),
            ..
        }
        | ProviderError::Webhook { .. } => return,
    };
    services
        .alerts
        .raise(Alert::new(AlertKind::PluginFailed, target, cause, fix).about(name));
}

/// Tells the guild's staff that a member's checkout could not be created (and the operator,
/// through [`plugin_failed`] or [`database_failed`], when the cause is theirs).
pub fn checkout_failed(
    services: &Services,
    guild: GuildId,
    provider: Option<&str>,
    error: &CheckoutError,
) {
    let fix = match error {
        CheckoutError::Plugin(e) => {
            if let Some(provider) = provider {
                plugin_failed(
                    services,
                    provider,
                    "create-checkout",
                    Scope::Guild(guild),
                    e,
                );
            }
            match e {
                ProviderError::Plugin {
                    error: PluginFailure::InvalidCredentials(_) | PluginFailure::Misconfigured(_),
                    ..
                } => "run /setup and enter the provider's credentials again.",
                _ => {
                    "members can try /join again in a while; if it lasts, tell whoever runs Docobo (they were alerted too)."
                }
            }
        }
        CheckoutError::Store(e) => {
            database_failed(services, e);
            "members can try /join again in a while; whoever runs Docobo was alerted."
        }
        CheckoutError::NoProvider | CheckoutError::Credentials(_) => {
            "run /setup and connect the payment provider again."
        }
        CheckoutError::ProviderUnavailable(_) => {
            "the provider's plugin is not installed on this Docobo: pick another provider in /setup, or ask whoever runs Docobo to install it."
        }
        CheckoutError::NoFreeCode => {
            "members can try /join again; if it lasts, tell whoever runs Docobo."
        }
        // The member was told to run /join again; nothing is wrong with the shop.
        CheckoutError::NotForSale(_) => return,
    };
    services.alerts.raise(Alert::new(
        AlertKind::CheckoutFailed,
        Target::Guild(guild),
        format!(
            "a member's /join could not create a checkout: {}. They could not pay.",
            error.user_message()
        ),
        fix,
    ));
}
