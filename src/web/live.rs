//! The overview, live: `GET …/events` is a server-sent event stream that says `changed` when
//! a delivery to the guild's webhook URL applied something (a purchase, a renewal, a
//! cancellation), and `GET …/summary` renders the overview's counts and charts alone, which
//! the page fetches again on each `changed` (htmx, triggered by `live.js`).
//!
//! The stream costs the webhook path one broadcast send per delivery while a page is open
//! ([`crate::ingest::watch`]). Before it says `changed`, it waits until the kept summary
//! was computed after the delivery ([`super::cache`]), so the page's fetch shows it; with
//! deliveries arriving faster than the summary is refreshed, it says `changed` once per
//! refresh. It ends when the server shuts down (at once, not at the drain
//! deadline), when the session is logged out or expires (checked at each keep-alive), or when
//! the browser leaves.

use std::convert::Infallible;
use std::time::Duration;

use salvo::prelude::*;
use salvo::sse::{self, SseEvent};
use tokio_util::sync::CancellationToken;

use crate::ingest::watch::Watcher;
use crate::services::Services;

/// How often an idle stream sends a comment: under the connection idle timeout (30 s), and
/// how soon a logged-out session's stream ends.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What one step of the stream waits on.
struct Stream {
    watcher: Watcher,
    guild: crate::domain::GuildId,
    services: Services,
    summaries: super::pages::Summaries,
    shutdown: CancellationToken,
    logins: std::sync::Arc<super::Logins>,
    session: String,
}

enum Next {
    Changed,
    KeepAlive,
}

impl Stream {
    async fn next(&mut self) -> Option<Next> {
        let next = tokio::select! {
            () = self.shutdown.cancelled() => return None,
            changed = self.watcher.changed() => if changed { Next::Changed } else { return None },
            () = tokio::time::sleep(KEEP_ALIVE) => Next::KeepAlive,
        };
        if matches!(next, Next::Changed) {
            let guild = self.guild;
            let generation = self.services.db.generation();
            let source = super::pages::OverviewSource::new(&self.services, guild);
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                // An error is the page's to show when it fetches the summary.
                _ = self.summaries.at_least(guild, generation, source) => {}
            }
        }
        self.logins.session(&self.session).is_some().then_some(next)
    }
}

/// `GET /dashboard/guilds/{id}/events`.
pub(super) fn events(
    services: &Services,
    dashboard: &super::Dashboard,
    shutdown: &CancellationToken,
    id: &str,
    req: &Request,
    res: &mut Response,
) {
    let Some((session_id, _, guild)) = super::pages::guild_session_id(services, id, req, res)
    else {
        return;
    };
    let stream = Stream {
        watcher: services.deliveries.subscribe(guild),
        guild,
        services: services.clone(),
        summaries: dashboard.summaries.clone(),
        shutdown: shutdown.clone(),
        logins: std::sync::Arc::clone(&services.logins),
        session: session_id,
    };
    // The first event says the stream is open (the page shows "live" from then on).
    let opened = futures_util::stream::once(async {
        Ok::<_, Infallible>(SseEvent::default().name("live").text("on"))
    });
    let rest = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = match stream.next().await? {
            Next::Changed => SseEvent::default().name("changed").text(""),
            Next::KeepAlive => SseEvent::default().comment("keep-alive"),
        };
        Some((Ok::<_, Infallible>(event), stream))
    });
    res.add_header("x-accel-buffering", "no", true).ok();
    sse::stream(res, futures_util::StreamExt::chain(opened, rest));
}
