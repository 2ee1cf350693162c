//! Tiers: a paid role is a tier that gives its own role plus the roles in `tier_roles`,
//! with an optional trial role and a policy for when access ends (V12).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, id_from};
use crate::domain::{GuildId, RoleId};

/// What a tier gives and what its end does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// The paid role's row id (`paid_roles.id`).
    pub paid_role: i64,
    /// The paid role's own role: the one `/join` and `/setup` name the tier by.
    pub role: RoleId,
    /// The other roles it gives (`tier_roles`), without `role`.
    pub extra: BTreeSet<RoleId>,
    /// Given on top while a subscription of the tier is trialing.
    pub trial_role: Option<RoleId>,
    /// Whether a member whose access ends (and whom no other tier keeps) is kicked.
    pub kick: bool,
}

impl Tier {
    /// Every role the tier gives a paying member: its own and the extra ones.
    #[must_use]
    pub fn roles(&self) -> BTreeSet<RoleId> {
        let mut all = self.extra.clone();
        all.insert(self.role);
        all
    }

    /// The roles a holding of the tier should show, `trialing` or not.
    #[must_use]
    pub fn roles_while(&self, trialing: bool) -> BTreeSet<RoleId> {
        let mut all = self.roles();
        if trialing && let Some(trial) = self.trial_role {
            all.insert(trial);
        }
        all
    }
}

type Row = (i64, i64, Option<i64>, String);

fn tier_from(conn: &Connection, (id, role, trial, on_end): Row) -> Result<Tier, DbError> {
    let extra = conn
        .prepare_cached("SELECT role_id FROM tier_roles WHERE paid_role_id = ?1 ORDER BY role_id")?
        .query_map([id], |r| r.get::<_, i64>(0))?
        .map(|r| id_from("tier_roles", r?))
        .collect::<Result<BTreeSet<RoleId>, DbError>>()?;
    Ok(Tier {
        paid_role: id,
        role: id_from("paid_roles", role)?,
        extra,
        trial_role: trial.map(|t| id_from("paid_roles", t)).transpose()?,
        kick: on_end == "kick",
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// One tier by its paid role's row id.
///
/// # Errors
/// A database error.
pub fn get(conn: &Connection, paid_role: i64) -> Result<Option<Tier>, DbError> {
    let found = conn
        .prepare_cached("SELECT id, role_id, trial_role_id, on_end FROM paid_roles WHERE id = ?1")?
        .query_row([paid_role], row)
        .optional()?;
    found.map(|r| tier_from(conn, r)).transpose()
}

/// Every tier of a guild, by paid role row id (retired ones included: their holders keep
/// access). Two queries whatever the number of tiers: role sync reads this per holding.
///
/// # Errors
/// A database error.
pub fn of_guild(conn: &Connection, guild: GuildId) -> Result<BTreeMap<i64, Tier>, DbError> {
    let mut tiers = BTreeMap::new();
    let rows = conn
        .prepare_cached(
            "SELECT id, role_id, trial_role_id, on_end FROM paid_roles WHERE guild_id = ?1",
        )?
        .query_map([guild.as_i64()], row)?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, role, trial, on_end) in rows {
        tiers.insert(
            id,
            Tier {
                paid_role: id,
                role: id_from("paid_roles", role)?,
                extra: BTreeSet::new(),
                trial_role: trial.map(|t| id_from("paid_roles", t)).transpose()?,
                kick: on_end == "kick",
            },
        );
    }
    let extra = conn
        .prepare_cached(
            "SELECT t.paid_role_id, t.role_id FROM tier_roles t
             JOIN paid_roles p ON p.id = t.paid_role_id WHERE p.guild_id = ?1",
        )?
        .query_map([guild.as_i64()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, role) in extra {
        if let Some(tier) = tiers.get_mut(&id) {
            tier.extra.insert(id_from("tier_roles", role)?);
        }
    }
    Ok(tiers)
}

/// Adds `role` to the roles a tier gives. Returns false when it gives it already.
///
/// # Errors
/// A database error.
pub fn add_role(conn: &Connection, paid_role: i64, role: RoleId) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("INSERT OR IGNORE INTO tier_roles (paid_role_id, role_id) VALUES (?1, ?2)")?
        .execute(params![paid_role, role.as_i64()])?
        == 1)
}

/// Takes `role` out of the roles a tier gives. Returns false when it did not give it.
///
/// # Errors
/// A database error.
pub fn remove_role(conn: &Connection, paid_role: i64, role: RoleId) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached("DELETE FROM tier_roles WHERE paid_role_id = ?1 AND role_id = ?2")?
        .execute(params![paid_role, role.as_i64()])?
        == 1)
}

/// Sets (or clears) the tier's trial role.
///
/// # Errors
/// A database error.
pub fn set_trial_role(
    conn: &Connection,
    paid_role: i64,
    role: Option<RoleId>,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE paid_roles SET trial_role_id = ?2,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE id = ?1",
    )?
    .execute(params![paid_role, role.map(RoleId::as_i64)])?;
    Ok(())
}

/// Sets what the end of access does: kick (`true`) or remove the roles (`false`).
///
/// # Errors
/// A database error.
pub fn set_kick(conn: &Connection, paid_role: i64, kick: bool) -> Result<(), DbError> {
    conn.prepare_cached(
        "UPDATE paid_roles SET on_end = ?2,
             updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE id = ?1",
    )?
    .execute(params![paid_role, if kick { "kick" } else { "remove" }])?;
    Ok(())
}

/// The roles a holding's last sync left on the member (`subscriptions.applied_roles`):
/// none unless `role_applied`; the tier's own role for a row from before V12 (NULL).
///
/// # Errors
/// A corrupt list.
pub fn applied_roles(
    role_applied: bool,
    stored: Option<&str>,
    own: RoleId,
) -> Result<BTreeSet<RoleId>, DbError> {
    if !role_applied {
        return Ok(BTreeSet::new());
    }
    let Some(stored) = stored else {
        return Ok(BTreeSet::from([own]));
    };
    stored
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            RoleId::parse(s).map_err(|e| DbError::Corrupt {
                table: "subscriptions",
                message: format!("applied_roles: {e}"),
            })
        })
        .collect()
}

/// The stored form of [`applied_roles`].
#[must_use]
pub fn applied_text(roles: &BTreeSet<RoleId>) -> String {
    roles
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(n: u64) -> RoleId {
        RoleId::new(n).expect("id")
    }

    #[test]
    fn applied_roles_read_back_what_was_stored_and_old_rows_mean_the_own_role() {
        let set = BTreeSet::from([role(5), role(7)]);
        let text = applied_text(&set);
        assert_eq!(text, "5,7");
        assert_eq!(
            applied_roles(true, Some(&text), role(9)).expect("parse"),
            set
        );
        assert_eq!(
            applied_roles(true, None, role(9)).expect("old row"),
            BTreeSet::from([role(9)])
        );
        assert!(
            applied_roles(false, Some(&text), role(9))
                .expect("not applied")
                .is_empty()
        );
        assert!(
            applied_roles(true, Some(""), role(9))
                .expect("empty")
                .is_empty()
        );
        assert!(applied_roles(true, Some("5,x"), role(9)).is_err());
    }

    #[test]
    fn a_trial_role_is_given_only_while_trialing() {
        let tier = Tier {
            paid_role: 1,
            role: role(1),
            extra: BTreeSet::from([role(2)]),
            trial_role: Some(role(3)),
            kick: false,
        };
        assert_eq!(tier.roles_while(false), BTreeSet::from([role(1), role(2)]));
        assert_eq!(
            tier.roles_while(true),
            BTreeSet::from([role(1), role(2), role(3)])
        );
    }
}
