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

/// Puts a role on sale.
///
/// # Errors
/// The role is already for sale in this guild ([`DbError::is_unique_violation`]), or the
/// guild is unknown (foreign key).
pub fn insert(conn: &Connection, role: &NewPaidRole) -> Result<PaidRole, DbError> {
    conn.prepare_cached(
        "INSERT INTO paid_roles (guild_id, role_id, name, price_minor, currency, billing, product_ref)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![
            role.guild_id.as_i64(),
            role.role_id.as_i64(),
            role.name,
            role.price.minor_units(),
            role.price.currency().as_str(),
            role.billing.to_db(),
            role.product_ref,
        ],
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
