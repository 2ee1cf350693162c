//! The one reading of a request path, for routing and for logs alike.
//!
//! Salvo's router forgives many spellings of a path (`//webhooks/polar/KEY`,
//! `/webhooks//polar/KEY/`, `/%77ebhooks/polar/KEY`), while a log redacting the raw text would
//! have to guess the same way. Instead every request is routed by [`Route::of`] on the
//! [`normalize`]d path (empty and `.` segments dropped, `..` resolved, each segment
//! percent-decoded once), and the access log prints [`logged`], the same normalised path with
//! the webhook key replaced: whatever the spelling, the key never reaches a log.

use std::fmt::Write as _;

use salvo::http::Method;

/// The segments of `path` (the URI's path, without the query), normalised: split on `/`,
/// empty and `.` segments dropped, `..` removing the segment before it (RFC 3986
/// `remove_dot_segments`), then each segment percent-decoded (invalid UTF-8 replaced). A
/// segment that decodes to `.` or `..` is a name, not a dot segment: decoding happens last.
#[must_use]
pub fn normalize(path: &str) -> Vec<String> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments
        .into_iter()
        .map(|s| salvo::routing::decode_url_path(s).into_owned())
        .collect()
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    /// `POST /webhooks/{provider}[/{key}]`.
    Webhook {
        provider: String,
        key: Option<String>,
    },
    /// `/dashboard/…`: the owner's web dashboard.
    Dashboard(crate::web::Page),
    /// A known path with another method: 405.
    WrongMethod(&'static str),
    NotFound,
}

impl Route {
    /// Routes `method` and `path` (see [`normalize`]).
    #[must_use]
    pub fn of(method: &Method, path: &str) -> Self {
        let segments = normalize(path);
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        let get = *method == Method::GET || *method == Method::HEAD;
        match parts.as_slice() {
            ["health"] if get => Self::Health,
            ["metrics"] if get => Self::Metrics,
            ["health" | "metrics"] => Self::WrongMethod("GET, HEAD"),
            ["webhooks", provider, rest @ ..] if rest.len() <= 1 => {
                if *method != Method::POST {
                    return Self::WrongMethod("POST");
                }
                Self::Webhook {
                    provider: (*provider).to_owned(),
                    key: rest.first().map(|k| (*k).to_owned()),
                }
            }
            ["dashboard", rest @ ..] => Self::dashboard(method, rest),
            _ => Self::NotFound,
        }
    }

    fn dashboard(method: &Method, rest: &[&str]) -> Self {
        use crate::web::Page;
        let get = *method == Method::GET || *method == Method::HEAD;
        let post = *method == Method::POST;
        match rest {
            [] if get => Self::Dashboard(Page::Home),
            ["login"] if get || post => Self::Dashboard(Page::Login),
            ["logout"] if post => Self::Dashboard(Page::Logout),
            ["guilds", id] if get => Self::Dashboard(Page::Guild((*id).to_owned())),
            ["guilds", id, "members"] if get => Self::Dashboard(Page::Members((*id).to_owned())),
            ["guilds", id, "summary"] if get => Self::Dashboard(Page::Summary((*id).to_owned())),
            ["guilds", id, "events"] if get => Self::Dashboard(Page::Events((*id).to_owned())),
            ["guilds", id, "syncs"] if get => Self::Dashboard(Page::Syncs((*id).to_owned())),
            ["guilds", id, "syncs", "retry"] if post => {
                Self::Dashboard(Page::SyncRetry((*id).to_owned()))
            }
            ["guilds", id, "deliveries"] if get => {
                Self::Dashboard(Page::Deliveries((*id).to_owned()))
            }
            ["guilds", id, "plugins"] if get => Self::Dashboard(Page::Plugins((*id).to_owned())),
            ["guilds", id, "members", user] if get => Self::Dashboard(Page::Member {
                guild: (*id).to_owned(),
                user: (*user).to_owned(),
            }),
            ["guilds", id, "members", user, action] => {
                Self::member_action(method, id, user, action)
            }
            ["guilds", id, "export"] if get => Self::Dashboard(Page::Export((*id).to_owned())),
            ["guilds", id, "import"] if get || post => {
                Self::Dashboard(Page::Import((*id).to_owned()))
            }
            ["backups"] if get || post => Self::Dashboard(Page::Backups),
            ["backups", name] if get => Self::Dashboard(Page::Backup((*name).to_owned())),
            ["health"] if get => Self::Dashboard(Page::Health),
            ["assets", name] if get => Self::Dashboard(Page::Asset((*name).to_owned())),
            []
            | ["guilds" | "assets" | "backups", _]
            | ["guilds", _, "members", _]
            | [
                "guilds",
                _,
                "members" | "summary" | "events" | "syncs" | "deliveries" | "plugins" | "export",
            ]
            | ["health"] => Self::WrongMethod("GET, HEAD"),
            ["login" | "backups"] | ["guilds", _, "import"] => Self::WrongMethod("GET, HEAD, POST"),
            ["logout"] | ["guilds", _, "syncs", "retry"] => Self::WrongMethod("POST"),
            _ => Self::NotFound,
        }
    }

    /// `…/members/{user}/{action}`: a POST, or the GET of forget's confirmation step.
    fn member_action(method: &Method, id: &str, user: &str, action: &str) -> Self {
        use crate::web::{MemberAction, Page};
        let Some(action) = MemberAction::parse(action) else {
            return Self::NotFound;
        };
        let get = *method == Method::GET || *method == Method::HEAD;
        let forget = action == MemberAction::Forget;
        if *method == Method::POST || (get && forget) {
            return Self::Dashboard(Page::MemberAction {
                guild: id.to_owned(),
                user: user.to_owned(),
                action,
            });
        }
        Self::WrongMethod(if forget { "GET, HEAD, POST" } else { "POST" })
    }
}

/// `path` as logs show it: normalised, every segment after `webhooks` (wherever it appears)
/// replaced by `***` but the provider's name when `known(name)`, and any byte that is not
/// printable ASCII (or is `%`) percent-encoded, so that a path cannot forge log lines. (A key
/// pasted where the provider belongs is hidden too.)
#[must_use]
pub fn logged(path: &str, known: impl Fn(&str) -> bool) -> String {
    let segments = normalize(path);
    let after = segments
        .iter()
        .position(|s| s == "webhooks")
        .map_or(usize::MAX, |i| i + 1);
    let mut out = String::with_capacity(path.len().min(512));
    for (i, segment) in segments.iter().enumerate() {
        out.push('/');
        if i > after || (i == after && !known(segment)) {
            out.push_str("***");
            continue;
        }
        for byte in segment.bytes() {
            if byte.is_ascii_graphic() && byte != b'%' {
                out.push(char::from(byte));
            } else {
                let _ = write!(out, "%{byte:02X}");
            }
        }
        // Logs are no place for a 1 MiB path.
        if out.len() > 256 {
            out.truncate(256);
            out.push('…');
            break;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(path: &str) -> String {
        super::logged(path, |p| p == "polar")
    }

    #[test]
    fn every_spelling_of_a_webhook_path_routes_to_the_same_place() {
        let guild = Route::Webhook {
            provider: "polar".into(),
            key: Some("k3y".into()),
        };
        for path in [
            "/webhooks/polar/k3y",
            "//webhooks/polar/k3y",
            "/webhooks//polar/k3y",
            "/webhooks/polar/k3y/",
            "/webhooks/./polar/k3y",
            "/webhooks/x/../polar/k3y",
            "/%77ebhooks/%70olar/%6b3y",
            "///webhooks///polar///k3y///",
        ] {
            assert_eq!(Route::of(&Method::POST, path), guild, "{path}");
            assert_eq!(logged(path), "/webhooks/polar/***", "{path}");
        }
        assert_eq!(
            Route::of(&Method::POST, "/webhooks/polar/"),
            Route::Webhook {
                provider: "polar".into(),
                key: None
            }
        );
        assert_eq!(
            Route::of(&Method::GET, "/webhooks/polar/k3y"),
            Route::WrongMethod("POST")
        );
        assert_eq!(
            Route::of(&Method::POST, "/webhooks/polar/k3y/more"),
            Route::NotFound
        );
        assert_eq!(Route::of(&Method::GET, "//health/"), Route::Health);
        assert_eq!(Route::of(&Method::GET, "/"), Route::NotFound);
        assert_eq!(Route::of(&Method::GET, "/../../etc"), Route::NotFound);
    }

    #[test]
    fn the_live_overview_routes_get_only() {
        use crate::web::Page;
        assert_eq!(
            Route::of(&Method::GET, "/dashboard/guilds/7/events"),
            Route::Dashboard(Page::Events("7".into()))
        );
        assert_eq!(
            Route::of(&Method::GET, "/dashboard/guilds/7/summary"),
            Route::Dashboard(Page::Summary("7".into()))
        );
        assert_eq!(
            Route::of(&Method::POST, "/dashboard/guilds/7/events"),
            Route::WrongMethod("GET, HEAD")
        );
    }

    #[test]
    fn the_operations_pages_route_by_method_and_keep_odd_names_as_names() {
        use crate::web::Page;
        let dashboard = |method: &Method, path: &str| Route::of(method, path);
        let id = || "42".to_owned();
        for (path, page) in [
            ("/dashboard/guilds/42/syncs", Page::Syncs(id())),
            ("/dashboard/guilds/42/deliveries", Page::Deliveries(id())),
            ("/dashboard/guilds/42/plugins", Page::Plugins(id())),
            ("/dashboard/backups", Page::Backups),
            ("/dashboard/backups/a.db", Page::Backup("a.db".into())),
            ("/dashboard/health", Page::Health),
        ] {
            assert_eq!(
                dashboard(&Method::GET, path),
                Route::Dashboard(page),
                "{path}"
            );
        }
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/guilds/42/syncs/retry"),
            Route::Dashboard(Page::SyncRetry(id()))
        );
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/backups"),
            Route::Dashboard(Page::Backups)
        );
        assert_eq!(
            dashboard(&Method::GET, "/dashboard/guilds/42/syncs/retry"),
            Route::WrongMethod("POST")
        );
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/guilds/42/syncs"),
            Route::WrongMethod("GET, HEAD")
        );
        assert_eq!(
            dashboard(&Method::DELETE, "/dashboard/backups"),
            Route::WrongMethod("GET, HEAD, POST")
        );
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/backups/a.db"),
            Route::WrongMethod("GET, HEAD")
        );
        // Dot segments are resolved before routing; encoded ones stay names (which the
        // download then refuses), as does an encoded slash.
        assert_eq!(
            dashboard(&Method::GET, "/dashboard/backups/../../etc/passwd"),
            Route::NotFound
        );
        assert_eq!(
            dashboard(&Method::GET, "/dashboard/backups/%2e%2e"),
            Route::Dashboard(Page::Backup("..".into()))
        );
        assert_eq!(
            dashboard(&Method::GET, "/dashboard/backups/..%2Fdocobo.db"),
            Route::Dashboard(Page::Backup("../docobo.db".into()))
        );
    }

    #[test]
    fn logged_paths_hide_keys_anywhere_and_cannot_forge_lines() {
        assert_eq!(
            logged("/webhooks/polar/k3y/more"),
            "/webhooks/polar/***/***"
        );
        assert_eq!(logged("/x/webhooks/polar/k3y"), "/x/webhooks/polar/***");
        assert_eq!(logged("/webhooks/polar"), "/webhooks/polar");
        assert_eq!(logged("/webhooks/k3y"), "/webhooks/***");
        assert_eq!(logged("/health"), "/health");
        assert_eq!(logged("/"), "/");
        assert_eq!(logged("/a%0Ab%25"), "/a%0Ab%25");
        // A percent-encoded slash stays inside its segment, and so inside the redaction.
        assert_eq!(logged("/webhooks/polar/a%2Fb"), "/webhooks/polar/***");
        assert!(logged(&"/a".repeat(10_000)).len() < 300);
    }

    #[test]
    fn member_pages_export_and_import_route_by_method() {
        use crate::web::{MemberAction, Page};
        let dashboard = |method: &Method, path: &str| Route::of(method, path);
        assert_eq!(
            dashboard(&Method::GET, "/dashboard/guilds/1/members/2"),
            Route::Dashboard(Page::Member {
                guild: "1".into(),
                user: "2".into()
            })
        );
        for (name, action) in [
            ("grant", MemberAction::Grant),
            ("extend", MemberAction::Extend),
            ("revoke", MemberAction::Revoke),
            ("forget", MemberAction::Forget),
        ] {
            let path = format!("/dashboard/guilds/1/members/2/{name}");
            let page = Route::Dashboard(Page::MemberAction {
                guild: "1".into(),
                user: "2".into(),
                action,
            });
            assert_eq!(dashboard(&Method::POST, &path), page, "{path}");
            let get = dashboard(&Method::GET, &path);
            if action == MemberAction::Forget {
                assert_eq!(get, page, "forget's confirmation step");
            } else {
                assert_eq!(get, Route::WrongMethod("POST"), "{path}");
            }
        }
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/guilds/1/members/2/delete"),
            Route::NotFound
        );
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/guilds/1/members/2"),
            Route::WrongMethod("GET, HEAD")
        );
        assert_eq!(
            dashboard(&Method::GET, "/dashboard/guilds/1/export"),
            Route::Dashboard(Page::Export("1".into()))
        );
        assert_eq!(
            dashboard(&Method::POST, "/dashboard/guilds/1/export"),
            Route::WrongMethod("GET, HEAD")
        );
        for method in [Method::GET, Method::POST] {
            assert_eq!(
                dashboard(&method, "/dashboard/guilds/1/import"),
                Route::Dashboard(Page::Import("1".into()))
            );
        }
        assert_eq!(
            dashboard(&Method::DELETE, "/dashboard/guilds/1/import"),
            Route::WrongMethod("GET, HEAD, POST")
        );
    }
}
