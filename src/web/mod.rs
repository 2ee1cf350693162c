//! The owner's web dashboard, served by the same binary under `/dashboard`: server-rendered
//! askama templates, assets embedded with rust-embed (no JavaScript build step).
//!
//! - [`auth`]: login links from `/dashboard` in Discord, the operator's admin token,
//!   sessions and their CSRF tokens (in memory).
//! - [`data`]: what the pages show, read from the store; [`cache`]: the overview's summary,
//!   kept between renders and refreshed at a bounded rate.
//! - `pages`: the HTTP edge: one function per page, templates, cookies.
//! - `ops`, [`ops_data`]: the operations pages (failed role syncs, deliveries, plugins,
//!   backups, health) and what they read and do.
//! - `member`: a member's page and the owner's admin actions, export and import (the same
//!   [`crate::admin`] calls `/admin` makes).

pub mod auth;
pub mod cache;
pub mod data;
mod live;
mod member;
mod member_data;
mod ops;
pub mod ops_data;
mod pages;
pub mod trends;

pub use auth::{Logins, Scope};
pub use member::Dashboard;
pub use pages::serve;

/// A dashboard page, as [`crate::http::route::Route::of`] reads the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `GET /dashboard`: the operator's server list, or the session's own server.
    Home,
    /// `GET /dashboard/login[?link=…]`, `POST /dashboard/login` (a link or the admin token).
    Login,
    /// `POST /dashboard/logout`.
    Logout,
    /// `GET /dashboard/guilds/{id}`: a server's overview.
    Guild(String),
    /// `GET /dashboard/guilds/{id}/members?q=&role=&status=&provider=&before=`: a server's
    /// subscriptions, filtered, newest first, 50 a page.
    Members(String),
    /// `GET /dashboard/guilds/{id}/summary`: the overview's counts and charts alone.
    Summary(String),
    /// `GET /dashboard/guilds/{id}/events`: server-sent events, `changed` when a delivery
    /// applied something.
    Events(String),
    /// `GET /dashboard/guilds/{id}/syncs`: a server's failed role syncs.
    Syncs(String),
    /// `POST /dashboard/guilds/{id}/syncs/retry`: retries one (or every) failed role sync.
    SyncRetry(String),
    /// `GET /dashboard/guilds/{id}/deliveries?before=`: a server's newest webhook deliveries.
    Deliveries(String),
    /// `GET /dashboard/guilds/{id}/plugins`: the server's provider plugin and the others.
    Plugins(String),
    /// `GET /dashboard/backups` (the list), `POST /dashboard/backups` (take one): operator only.
    Backups,
    /// `GET /dashboard/backups/{name}`: downloads one backup (operator only).
    Backup(String),
    /// `GET /dashboard/health`: what `/health` reports, for people.
    Health,
    /// `GET /dashboard/guilds/{id}/members/{user}`: a member's history, role sync and actions.
    Member { guild: String, user: String },
    /// `POST /dashboard/guilds/{id}/members/{user}/{grant|extend|revoke|forget}`, and `GET
    /// …/forget` (its confirmation step).
    MemberAction {
        guild: String,
        user: String,
        action: MemberAction,
    },
    /// `GET /dashboard/guilds/{id}/export`: the file `/admin export` attaches, as a download.
    Export(String),
    /// `GET /dashboard/guilds/{id}/import` (the form), `POST` (a file, or the provider's list).
    Import(String),
    /// `GET /dashboard/assets/{name}`.
    Asset(String),
}

/// An admin action on a member's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    Grant,
    Extend,
    Revoke,
    Forget,
}

impl MemberAction {
    /// The action named by a path segment.
    #[must_use]
    pub fn parse(segment: &str) -> Option<Self> {
        Some(match segment {
            "grant" => Self::Grant,
            "extend" => Self::Extend,
            "revoke" => Self::Revoke,
            "forget" => Self::Forget,
            _ => return None,
        })
    }
}
