//! `export` and `import`: a guild's tiers and current entitlements as a file, and that file
//! (or the provider's own list of current subscribers) brought back in.
//!
//! The file is JSON lines (`docobo-export`, version 1; README "/admin"): a header line,
//! then one line per tier and one per entitlement. Discord ids, provider ids, statuses and
//! end dates only: no e-mail address, name or username.
//!
//! Import is idempotent and never shortens anything: an entitlement Docobo already has (same
//! provider id, or same payment code) is kept, and only a complimentary access or pass whose
//! file end is later is lengthened; a tier that exists keeps its price.

use std::fmt::Write as _;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Actor, AdminError, Done, announced};
use crate::db::admin::{self as rows, ADMIN_PROVIDER};
use crate::db::guilds::Guild;
use crate::db::paid_roles::{self, NewPaidRole};
use crate::db::{DbError, guilds, subscriptions};
use crate::domain::{
    Billing, Claim, Currency, GuildId, Money, ProviderId, RoleId, Scope, SubscriptionState,
    SubscriptionStatus, UnixMillis, UserId,
};
use crate::providers::{PluginFailure, ProviderError, Subscriber};
use crate::services::Services;
use crate::subscriptions::{CreateSubscription, SubscriptionError};

/// The file's `format`.
pub const FORMAT: &str = "docobo-export";
/// The file version this Docobo writes; it reads this one and the ones before it (version 2
/// added the tiers' other roles, trial role and policies, all optional).
pub const VERSION: u32 = 2;
/// The most lines one import takes.
pub const MAX_LINES: usize = 100_000;
/// The most pages of a provider's subscriber list read by one import.
const MAX_PAGES: usize = 200;

/// A line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    Header {
        format: String,
        version: u32,
        guild_id: String,
        exported_at: UnixMillis,
    },
    Tier {
        role_id: String,
        price_minor: i64,
        currency: String,
        billing: String,
        product_ref: Option<String>,
        /// The other roles the tier gives (version 2; none in a version 1 file).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trial_role_id: Option<String>,
        /// `remove` (the default) or `kick`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_end: Option<String>,
        /// `keep` (the default) or `revoke`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partial_refund: Option<String>,
    },
    Entitlement {
        user_id: String,
        role_id: String,
        provider: String,
        external_id: Option<String>,
        payment_code: Option<String>,
        status: String,
        period_end: Option<UnixMillis>,
        #[serde(default)]
        cancel_at_period_end: bool,
        #[serde(default)]
        test: bool,
    },
}

/// An export: the file's text and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub file_name: String,
    pub text: String,
    pub tiers: usize,
    pub entitlements: usize,
    pub done: Done,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub tiers_added: usize,
    pub created: usize,
    pub lengthened: usize,
    pub unchanged: usize,
    /// Why lines were skipped (at most a few, with the count of the rest).
    pub skipped: Vec<String>,
}

/// `export`: the guild's tiers and every entitlement that holds now.
///
/// # Errors
/// A database error.
pub async fn export(
    services: &Services,
    guild: GuildId,
    actor: Actor,
) -> Result<Export, AdminError> {
    let now = services.now();
    let grace = services.grace_ms;
    services
        .db
        .write(move |conn| {
            let tiers = paid_roles::all(conn, guild)?;
            let settings = crate::db::tiers::of_guild(conn, guild)?;
            let live = rows::live_subscriptions(conn, guild)?;
            let mut lines = vec![Line::Header {
                format: FORMAT.into(),
                version: VERSION,
                guild_id: guild.to_string(),
                exported_at: now,
            }];
            for t in &tiers {
                let tier = settings.get(&t.id);
                let revokes = paid_roles::partial_refund_revokes(conn, t.id)?;
                lines.push(Line::Tier {
                    role_id: t.role_id.to_string(),
                    price_minor: t.price.minor_units(),
                    currency: t.price.currency().as_str().to_owned(),
                    billing: t.billing.to_db(),
                    product_ref: t.product_ref.clone(),
                    roles: tier
                        .map(|t| t.extra.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    trial_role_id: tier.and_then(|t| t.trial_role).map(|r| r.to_string()),
                    on_end: tier.filter(|t| t.kick).map(|_| "kick".to_owned()),
                    partial_refund: revokes.then(|| "revoke".to_owned()),
                });
            }
            let mut entitlements = 0;
            for row in live {
                let status = SubscriptionStatus::parse(&row.status).map_err(|e| corrupt(&e))?;
                let grace = if row.payment_code.is_some() { 0 } else { grace };
                if !crate::domain::is_entitled(status, row.period_end, now, grace) {
                    continue;
                }
                entitlements += 1;
                lines.push(Line::Entitlement {
                    user_id: row.user_id.to_string(),
                    role_id: row.role_id.to_string(),
                    provider: row.provider,
                    external_id: row.external_id,
                    payment_code: row.payment_code,
                    status: row.status,
                    period_end: row.period_end,
                    cancel_at_period_end: row.cancel_at_period_end,
                    test: row.test,
                });
            }
            let mut text = String::new();
            for line in &lines {
                text.push_str(&serde_json::to_string(line).map_err(|e| corrupt(&e))?);
                text.push('\n');
            }
            let summary = format!("{} tier(s), {entitlements} entitlement(s)", tiers.len());
            let detail = format!("{actor} exported {summary}");
            super::audit(conn, guild, actor, "export", None, None, &json!({"entitlements": entitlements}), &detail)?;
            Ok(Export {
                file_name: format!("docobo-export-{guild}.jsonl"),
                text,
                tiers: tiers.len(),
                entitlements,
                done: Done {
                    reply: format!("Exported {summary}. The file holds Discord ids, provider ids and end dates only."),
                    log: format!("📤 {detail}"),
                },
            })
        })
        .await
        .map_err(AdminError::from)
}

/// `import` from a file in the [`Line`] format.
///
/// # Errors
/// [`AdminError::Refused`] for a file that is not one (every bad line is named; nothing is
/// imported then).
pub async fn import_file(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    text: &str,
) -> Result<(ImportReport, Done), AdminError> {
    let lines = parse(text)?;
    apply(services, guild, actor, lines, "file").await
}

/// `import` from the provider's own list of current subscribers (plugin API 0.2
/// `list-subscribers`), for subscriptions bought through Docobo checkouts elsewhere.
///
/// # Errors
/// [`AdminError::Refused`] without a provider that can list its subscribers;
/// [`AdminError::Provider`] when the provider fails.
pub async fn import_from_provider(
    services: &Services,
    guild: GuildId,
    actor: Actor,
) -> Result<(ImportReport, Done), AdminError> {
    let saved = services
        .db
        .read(move |conn| guilds::get(conn, guild))
        .await?;
    let account = saved
        .as_ref()
        .map(|g| services.accounts.for_guild(g))
        .transpose()
        .map_err(|_| {
            AdminError::Provider(
                "the provider credentials saved for this server cannot be opened; run /setup again"
                    .into(),
            )
        })?
        .flatten();
    let Some((provider, config)) = account else {
        return Err(AdminError::Refused("This server has no payment provider connected. Fix: run /setup first, or import a file.".into()));
    };
    let mut subscribers: Vec<Subscriber> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = services
            .providers
            .list_subscribers(provider.as_str(), &config, cursor.as_deref())
            .await
            .map_err(|e| provider_error(&provider, e))?;
        subscribers.extend(page.subscribers);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let lines = services
        .db
        .read(move |conn| from_subscribers(conn, guild, &provider, subscribers))
        .await?;
    apply(services, guild, actor, lines, "provider").await
}

fn provider_error(provider: &ProviderId, e: ProviderError) -> AdminError {
    match e {
        ProviderError::Plugin {
            error: PluginFailure::Unsupported(_),
            ..
        } => AdminError::Refused(format!(
            "{provider} cannot list its subscribers (its plugin has no list-subscribers). Import a file instead, or /admin grant members one by one."
        )),
        other => AdminError::Provider(format!(
            "{provider} could not list its subscribers: {other}"
        )),
    }
}

/// The provider's subscribers as entitlement lines (or skipped reasons as `Err`).
fn from_subscribers(
    conn: &Connection,
    guild: GuildId,
    provider: &ProviderId,
    subscribers: Vec<Subscriber>,
) -> Result<Vec<Result<Line, String>>, DbError> {
    let mut out = Vec::new();
    for s in subscribers {
        let id = &s.subscription_id;
        let Some(Claim { id: Ok(user), .. }) = &s.user else {
            out.push(Err(format!("{id}: no Discord user id (not bought through a Docobo checkout): /admin grant them instead")));
            continue;
        };
        let user = *user;
        if let Some(Claim { id: claimed, .. }) = &s.guild
            && claimed.as_ref().ok() != Some(&guild)
        {
            out.push(Err(format!("{id}: bought for another server")));
            continue;
        }
        let role = match (&s.role, s.product_id.as_deref()) {
            (Some(Claim { id: Ok(role), .. }), _) => Some(*role),
            (_, Some(product)) => {
                paid_roles::by_product_ref(conn, guild, product)?.map(|r| r.role_id)
            }
            _ => None,
        };
        let Some(role) = role else {
            out.push(Err(format!(
                "{id}: its product is not sold here (run /setup for it)"
            )));
            continue;
        };
        out.push(Ok(Line::Entitlement {
            user_id: user.to_string(),
            role_id: role.to_string(),
            provider: provider.to_string(),
            external_id: Some(s.subscription_id),
            payment_code: None,
            status: s.status.as_str().to_owned(),
            period_end: s.period_end,
            cancel_at_period_end: s.status == SubscriptionStatus::Canceled,
            test: s.test,
        }));
    }
    Ok(out)
}

/// Reads the file: a version-1 header first, then tiers and entitlements.
fn parse(text: &str) -> Result<Vec<Result<Line, String>>, AdminError> {
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    for (n, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        if lines.len() >= MAX_LINES {
            return Err(AdminError::Refused(format!(
                "the file has more than {MAX_LINES} lines; split it"
            )));
        }
        match serde_json::from_str::<Line>(raw) {
            Ok(line) => lines.push((n + 1, line)),
            Err(e) => errors.push(format!("line {}: {e}", n + 1)),
        }
    }
    match lines.first() {
        Some((
            _,
            Line::Header {
                format, version, ..
            },
        )) if format == FORMAT && (1..=VERSION).contains(version) => {}
        Some((
            _,
            Line::Header {
                format, version, ..
            },
        )) if format == FORMAT => {
            return Err(AdminError::Refused(format!(
                "the file is version {version}; this Docobo reads versions 1 to {VERSION}. Fix: upgrade Docobo, or export it again with this version"
            )));
        }
        _ if errors.is_empty() => {
            return Err(AdminError::Refused(format!(
                "this is not a Docobo export: its first line must be the header {{\"type\":\"header\",\"format\":\"{FORMAT}\",\"version\":{VERSION},…}}"
            )));
        }
        _ => {}
    }
    if !errors.is_empty() {
        let more = errors.len().saturating_sub(5);
        errors.truncate(5);
        return Err(AdminError::Refused(format!(
            "nothing was imported; fix these lines and import again:\n{}{}",
            errors.join("\n"),
            if more > 0 {
                format!("\n… and {more} more")
            } else {
                String::new()
            }
        )));
    }
    Ok(lines.into_iter().skip(1).map(|(_, l)| Ok(l)).collect())
}

async fn apply(
    services: &Services,
    guild: GuildId,
    actor: Actor,
    lines: Vec<Result<Line, String>>,
    source: &'static str,
) -> Result<(ImportReport, Done), AdminError> {
    let now = services.now();
    let grace = services.grace_ms;
    let (report, done) = services
        .db
        .write(move |conn| {
            let Some(saved) = guilds::get(conn, guild)? else {
                return Ok(Err(AdminError::Refused("This server is not set up in Docobo yet. Fix: run /setup first.".into())));
            };
            let mut report = ImportReport::default();
            for line in lines {
                match line {
                    Err(why) => report.skipped.push(why),
                    Ok(line) => apply_line(conn, &saved, line, now, grace, &mut report)?,
                }
            }
            let summary = format!(
                "{} new, {} lengthened, {} unchanged, {} skipped; {} tier(s) added",
                report.created, report.lengthened, report.unchanged, report.skipped.len(), report.tiers_added
            );
            let detail = format!("{actor} imported entitlements from a {source}: {summary}");
            super::audit(conn, guild, actor, "import", None, None, &json!({"source": source, "created": report.created, "lengthened": report.lengthened}), &detail)?;
            let mut reply = format!("Imported from the {source}: {summary}.");
            for why in report.skipped.iter().take(10) {
                let _ = write!(reply, "\n- skipped {why}");
            }
            if report.skipped.len() > 10 {
                let _ = write!(reply, "\n… and {} more skipped", report.skipped.len() - 10);
            }
            Ok(Ok((report, Done { reply, log: format!("📥 {detail}") })))
        })
        .await??;
    services.sync.wake();
    Ok((report, done))
}

/// A tier line's settings beyond its price (version 2).
struct TierSettings {
    extra: Vec<RoleId>,
    trial: Option<RoleId>,
    kick: bool,
    revoke: bool,
}

impl TierSettings {
    fn parse(
        roles: &[String],
        trial: Option<&str>,
        on_end: Option<&str>,
        partial_refund: Option<&str>,
    ) -> Result<Self, crate::domain::ValidationError> {
        let choice = |value: Option<&str>, default: &str, other: &str, field: &str| match value
            .unwrap_or(default)
        {
            v if v == default => Ok(false),
            v if v == other => Ok(true),
            v => Err(crate::domain::ValidationError::new(
                "tier",
                format!("{field} must be {default:?} or {other:?}, not {v:?}"),
            )),
        };
        Ok(Self {
            extra: roles
                .iter()
                .map(|r| RoleId::parse(r))
                .collect::<Result<_, _>>()?,
            trial: trial.map(RoleId::parse).transpose()?,
            kick: choice(on_end, "remove", "kick", "on_end")?,
            revoke: choice(partial_refund, "keep", "revoke", "partial_refund")?,
        })
    }

    fn store(
        self,
        conn: &Connection,
        guild: GuildId,
        role: RoleId,
        id: i64,
    ) -> Result<(), DbError> {
        // As `/admin tier` allows: never @everyone, at most its number of roles.
        let everyone = RoleId::new(guild.get()).ok();
        for r in self
            .extra
            .into_iter()
            .filter(|r| *r != role && Some(*r) != everyone)
            .take(super::tiers::MAX_ROLES - 1)
        {
            crate::db::tiers::add_role(conn, id, r)?;
        }
        let trial = self.trial.filter(|t| Some(*t) != everyone);
        crate::db::tiers::set_trial_role(conn, id, trial)?;
        crate::db::tiers::set_kick(conn, id, self.kick)?;
        paid_roles::set_partial_refund(conn, guild, role, self.revoke)?;
        Ok(())
    }
}

fn apply_line(
    conn: &Connection,
    guild: &Guild,
    line: Line,
    now: UnixMillis,
    grace: i64,
    report: &mut ImportReport,
) -> Result<(), DbError> {
    match line {
        Line::Header { .. } => report.skipped.push("a second header line".into()),
        Line::Tier {
            role_id,
            price_minor,
            currency,
            billing,
            product_ref,
            roles,
            trial_role_id,
            on_end,
            partial_refund,
        } => {
            let parsed = (|| {
                let role = RoleId::parse(&role_id)?;
                let price = Money::new(price_minor, Currency::parse(&currency)?)?;
                let settings = TierSettings::parse(
                    &roles,
                    trial_role_id.as_deref(),
                    on_end.as_deref(),
                    partial_refund.as_deref(),
                )?;
                Ok::<_, crate::domain::ValidationError>((
                    role,
                    price,
                    Billing::parse(&billing)?,
                    settings,
                ))
            })();
            match parsed {
                Err(e) => report.skipped.push(format!("tier {role_id}: {e}")),
                Ok((role, ..)) if paid_roles::get(conn, guild.id, role)?.is_some() => {}
                Ok((role, price, billing, settings)) => {
                    let id = paid_roles::insert(
                        conn,
                        &NewPaidRole {
                            guild_id: guild.id,
                            role_id: role,
                            name: String::new(),
                            price,
                            billing,
                            product_ref,
                        },
                    )?
                    .id;
                    settings.store(conn, guild.id, role, id)?;
                    report.tiers_added += 1;
                }
            }
        }
        Line::Entitlement {
            user_id,
            role_id,
            provider,
            external_id,
            payment_code,
            status,
            period_end,
            cancel_at_period_end: _,
            test,
        } => {
            let what = format!("<@{user_id}> <@&{role_id}>");
            let parsed = (|| {
                Ok::<_, crate::domain::ValidationError>((
                    UserId::parse(&user_id)?,
                    RoleId::parse(&role_id)?,
                    ProviderId::parse(&provider)?,
                    SubscriptionStatus::parse(&status)?,
                ))
            })();
            match parsed {
                Err(e) => report.skipped.push(format!("{what}: {e}")),
                Ok((user, role, provider, status)) => {
                    let entitlement = Entitlement {
                        user,
                        role,
                        provider,
                        external_id,
                        payment_code,
                        status,
                        period_end,
                        test,
                    };
                    if let Err(why) = entitle(conn, guild, &entitlement, now, grace, report)? {
                        report.skipped.push(format!("{what}: {why}"));
                    }
                }
            }
        }
    }
    Ok(())
}

struct Entitlement {
    user: UserId,
    role: RoleId,
    provider: ProviderId,
    external_id: Option<String>,
    payment_code: Option<String>,
    status: SubscriptionStatus,
    period_end: Option<UnixMillis>,
    test: bool,
}

/// Finds or creates one entitlement; `Ok(Err(why))` when it is skipped.
fn entitle(
    conn: &Connection,
    guild: &Guild,
    e: &Entitlement,
    now: UnixMillis,
    grace: i64,
    report: &mut ImportReport,
) -> Result<Result<(), String>, DbError> {
    let pass_or_comp = e.provider.as_str() == ADMIN_PROVIDER || e.payment_code.is_some();
    let grace = if e.payment_code.is_some() { 0 } else { grace };
    if !crate::domain::is_entitled(e.status, e.period_end, now, grace) {
        return Ok(Err(format!("{} is not a current entitlement", e.status)));
    }
    // Whose credentials it belongs to: the guild's own when it connected this provider.
    let scope = if e.provider.as_str() == ADMIN_PROVIDER
        || (guild.provider.as_ref() == Some(&e.provider) && guild.credentials.is_some())
    {
        Scope::Guild(guild.id)
    } else {
        Scope::Operator
    };
    let existing = match (&e.external_id, &e.payment_code) {
        (Some(ext), _) => subscriptions::by_external_id(conn, &e.provider, scope, ext)?,
        (None, Some(code)) => subscriptions::by_payment_code(conn, code)?,
        (None, None) => return Ok(Err("neither a provider id nor a payment code".into())),
    };
    if let Some(sub) = existing {
        if sub.guild_id != guild.id {
            return Ok(Err(
                "its provider id or payment code belongs to another server".into(),
            ));
        }
        match (sub.state.period_end, e.period_end) {
            (Some(have), Some(file))
                if pass_or_comp && file > have && sub.is_entitled(now, grace) =>
            {
                let state = SubscriptionState {
                    period_end: Some(file),
                    ..sub.state
                };
                subscriptions::set_state(conn, sub.id, state, sub.cancel_at_period_end, now)?;
                announced(conn, sub.id, sub.state.status, Some(file))?;
                report.lengthened += 1;
            }
            _ => report.unchanged += 1,
        }
        return Ok(Ok(()));
    }
    let Some(paid) = paid_roles::get(conn, guild.id, e.role)? else {
        return Ok(Err(
            "that role is not sold here (include its tier line, or run /setup)".into(),
        ));
    };
    let data = CreateSubscription {
        guild_id: guild.id,
        user_id: e.user,
        role_id: e.role,
        provider: e.provider.clone(),
        scope,
        external_id: e.external_id.clone(),
        payment_code: e.payment_code.clone(),
        status: e.status,
        period_end: e.period_end,
        occurred_at: None,
        username: None,
    };
    match crate::subscriptions::create_for(conn, &paid, &data, now) {
        Ok(created) => {
            if e.test {
                subscriptions::set_test(conn, created.id)?;
            }
            // Brought in, not bought: no "bought" line per member in the log channel.
            announced(conn, created.id, e.status, e.period_end)?;
            report.created += 1;
            Ok(Ok(()))
        }
        Err(SubscriptionError::Db(e)) => Err(e),
        Err(other) => Ok(Err(other.to_string())),
    }
}

fn corrupt(e: &dyn std::fmt::Display) -> DbError {
    DbError::Corrupt {
        table: "subscriptions",
        message: e.to_string(),
    }
}
