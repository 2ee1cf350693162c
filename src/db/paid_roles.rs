//! `paid_roles`: the roles a guild sells, with price and billing period.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{DbError, id_from};
use crate::domain::{Billing, Currency, GuildId, Money, RoleId};

/// A role for sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidRole {
    /// Row id (referenced by subscriptions).
    pub id: i64,
    pub guild_id: GuildId,
    pub role_id: RoleId,
    pub name: String,
    pub price: Money,
    pub billing: Billing,
    /// The provider's product id, for providers that need one.
    pub product_ref: Option<String>,
}

/// A role to put on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPaidRole {
    pub guild_id: GuildId,
    pub role_id: RoleId,
    pub name: String,
    pub price: Money,
    pub billing: Billing,
    pub product_ref: Option<String>,
}

const COLUMNS: &str = "id, guild_id, role_id, name, price_minor, currency, billing, product_ref";

fn corrupt(message: &dyn std::fmt::Display) -> DbError {
    DbError::Corrupt {
        table: "paid_roles",
        message: message.to_string(),
    }
}

type RawRow = (i64, i64, i64, String, i64, String, String, Option<String>);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn to_paid_role(
    (id, guild, role, name, minor, currency, billing, product_ref): RawRow,
) -> Result<PaidRole, DbError> {
    let currency = Currency::parse(&currency).map_err(|e| corrupt(&e))?;
    Ok(PaidRole {
        id,
        guild_id: id_from("paid_roles", guild)?,
        role_id: id_from("paid_roles", role)?,
        name,
        price: Money::new(minor, currency).map_err(|e| corrupt(&e))?,
        billing: Billing::parse(&billing).map_err(|e| corrupt(&e))?,
        product_ref,
    })
}

/// The seven inserted columns, in `INSERT` order, shared by [`insert`] and [`upsert`].
fn values(role: &NewPaidRole) -> impl rusqlite::Params + '_ {
    (
        role.guild_id.as_i64(),
        role.role_id.as_i64(),
        role.name.as_str(),
        role.price.minor_units(),
        role.price.currency().as_str().to_owned(),
        role.billing.to_db(),
        role.product_ref.as_deref(),
    )
}

/// Puts a role on sale.
///
/// # Errors
/// The role is already for sale in this guild ([`DbError::is_unique_violation`]), or the
/// guild is unknown (foreign key).
pub fn insert(conn: &Connection, role: &NewPaidRole) -> Result<PaidRole, DbError> {
    conn.prepare_cached(
        "INSERT INTO paid_roles (guild_id, role_id, name, price_minor, currency, billing, product_ref)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(values(role),
    )?;
    Ok(PaidRole {
        id: conn.last_insert_rowid(),
        guild_id: role.guild_id,
        role_id: role.role_id,
        name: role.name.clone(),
        price: role.price,
        billing: role.billing,
        product_ref: role.product_ref.clone(),
    })
}

/// The paid role for `role` in `guild`.
pub fn get(conn: &Connection, guild: GuildId, role: RoleId) -> Result<Option<PaidRole>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM paid_roles WHERE guild_id = ?1 AND role_id = ?2"
    ))?
    .query_row([guild.as_i64(), role.as_i64()], raw)
    .optional()?
    .map(to_paid_role)
    .transpose()
}

/// The paid role with this row id.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<PaidRole>, DbError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM paid_roles WHERE id = ?1"))?
        .query_row([id], raw)
        .optional()?
        .map(to_paid_role)
        .transpose()
}

/// The paid role whose provider product is `product_ref`, in `guild`.
pub fn by_product_ref(
    conn: &Connection,
    guild: GuildId,
    product_ref: &str,
) -> Result<Option<PaidRole>, DbError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM paid_roles WHERE guild_id = ?1 AND product_ref = ?2"
    ))?
    .query_row(params![guild.as_i64(), product_ref], raw)
    .optional()?
    .map(to_paid_role)
    .transpose()
}

/// Puts a role on sale, or updates its price, billing and product when it already was.
/// Subscriptions keep pointing at the same row.
pub fn upsert(conn: &Connection, role: &NewPaidRole) -> Result<PaidRole, DbError> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO paid_roles (guild_id, role_id, name, price_minor, currency, billing, product_ref)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (guild_id, role_id) DO UPDATE SET
                 name = excluded.name, price_minor = excluded.price_minor,
                 currency = excluded.currency, billing = excluded.billing,
                 product_ref = excluded.product_ref, for_sale = 1,
                 updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
             RETURNING id",
        )?
        .query_row(
            values(role),
            |row| row.get(0),
        )?;
    Ok(PaidRole {
        id,
        guild_id: role.guild_id,
        role_id: role.role_id,
        name: role.name.clone(),
        price: role.price,
        billing: role.billing,
        product_ref: role.product_ref.clone(),
    })
}

/// Takes every role of `guild` not in `keep` off sale (existing subscriptions keep them).
pub fn retire_others(conn: &Connection, guild: GuildId, keep: &[RoleId]) -> Result<(), DbError> {
    let keep = keep
        .iter()
        .map(|r| r.as_i64().to_string())
        .collect::<Vec<_>>()
        .join(",");
    conn.prepare_cached(
        "UPDATE paid_roles SET for_sale = 0, updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
         WHERE guild_id = ?1 AND for_sale = 1
           AND role_id NOT IN (SELECT value FROM json_each('[' || ?2 || ']'))",
    )?
    .execute(params![guild.as_i64(), keep])?;
    Ok(())
}

/// The roles `guild` sells, in the order they were put on sale.
pub fn for_sale(conn: &Connection, guild: GuildId) -> Result<Vec<PaidRole>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM paid_roles WHERE guild_id = ?1 AND for_sale = 1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([guild.as_i64()], raw)?;
    rows.map(|r| to_paid_role(r?)).collect()
}

/// Every paid role of `guild`, on sale or not (role ids the sweep checks for drift).
pub fn all(conn: &Connection, guild: GuildId) -> Result<Vec<PaidRole>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM paid_roles WHERE guild_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([guild.as_i64()], raw)?;
    rows.map(|r| to_paid_role(r?)).collect()
}

/// Whether a partial refund of this paid role ends access (its policy is `revoke`; the
/// default `keep` keeps it).
///
/// # Errors
/// A database error.
pub fn partial_refund_revokes(conn: &Connection, id: i64) -> Result<bool, DbError> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .prepare_cached("SELECT partial_refund = 'revoke' FROM paid_roles WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// Sets the guild's paid role `role`'s partial-refund policy. Returns whether it is sold here.
///
/// # Errors
/// A database error.
pub fn set_partial_refund(
    conn: &Connection,
    guild: GuildId,
    role: RoleId,
    revoke: bool,
) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "UPDATE paid_roles SET partial_refund = ?3,
                 updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
             WHERE guild_id = ?1 AND role_id = ?2",
        )?
        .execute(rusqlite::params![
            guild.as_i64(),
            role.as_i64(),
            if revoke { "revoke" } else { "keep" }
        ])?
        == 1)
}
