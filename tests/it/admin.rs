//! `/admin` end to end: the owner's commands at the fake Discord, the real role-sync worker,
//! the real Polar plugin against a fake Polar API, a real SQLite file.

use std::fmt::Write as _;
use std::sync::Arc;

use docobo::db::guilds;
use docobo::domain::{Billing, ChannelId, GuildId, RoleId};
use docobo_testkit::FakeDiscord;
use docobo_testkit::discord::{Reply, SlashCommand};
use serde_json::{Value, json};

use crate::app::TestApp;
use crate::bot::{
    BUYER, DAY_MS, GUILD, LOG_CHANNEL, MEMBER, OWNER, POLAR_SECRET, PRODUCT, SUPPORTER, WAIT, buy,
    fake_discord, now_ms, polar_api, polar_event, start_app,
};
use crate::fake_api::FakeApi;

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// An app whose guild uses Polar (its API the fake `api`: nothing reaches Polar, not even
/// the poll at start) and has a log channel. Returns the webhook path.
async fn shop(discord: &Arc<FakeDiscord>, api: &FakeApi) -> (TestApp, String) {
    let app = start_app(discord, &[]).await;
    let path = connect_polar(&app, api).await;
    (app, path)
}

/// Connects Polar (its API the fake `api`) to the test guild and sets its log channel.
/// Returns the webhook path.
pub(crate) async fn connect_polar(app: &TestApp, api: &FakeApi) -> String {
    let creds = [
        ("webhook_secret", POLAR_SECRET.to_owned()),
        ("access_token", "polar_oat_x".to_owned()),
        ("api_url", api.url.clone()),
    ];
    let creds: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let key = app.add_guild(guild(), "polar", &creds).await;
    app.db
        .call(|conn| {
            guilds::set_log_channel(
                conn,
                guild(),
                Some(ChannelId::new(LOG_CHANNEL).expect("id")),
            )
        })
        .await
        .expect("log channel");
    format!("/webhooks/polar/{key}")
}

async fn sell_supporter(app: &TestApp) {
    app.add_paid_role(
        guild(),
        RoleId::new(SUPPORTER).expect("role"),
        (500, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
}

/// `user` runs `/admin <sub>` with `options`; returns the visible answer.
async fn admin(discord: &FakeDiscord, user: u64, sub: &str, options: &[(&str, Value)]) -> Reply {
    let mut command = SlashCommand::new(GUILD, user, "admin").subcommand(sub);
    for (name, value) in options {
        command = command.option(name, value.clone());
    }
    let reply = discord
        .run_slash_command(&command, WAIT)
        .await
        .expect("/admin answers");
    assert!(reply.is_ephemeral(), "{reply:?}");
    reply
}

fn text(reply: &Reply) -> String {
    reply.content().unwrap_or_default().to_owned()
}

/// Waits for a log-channel line containing `needle`.
async fn log_line(discord: &FakeDiscord, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = discord
            .sent_messages()
            .iter()
            .filter(|m| m.channel_id == LOG_CHANNEL)
            .filter_map(|m| m.message.get("content").and_then(Value::as_str))
            .find(|c| c.contains(needle))
        {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line with {needle:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn comp_end(app: &TestApp) -> Option<i64> {
    app.db
        .call(|conn| {
            Ok(conn.query_row(
                "SELECT period_end FROM subscriptions WHERE provider = 'admin' AND user_id = ?1",
                [MEMBER as i64],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("comp")
}

/// Every row of every table, as text (to look for what must not be there).
async fn all_text(app: &TestApp) -> String {
    app.db
        .call(|conn| {
            let mut out = String::new();
            for table in [
                "guilds",
                "members",
                "paid_roles",
                "subscriptions",
                "webhook_events",
            ] {
                let sql = format!("SELECT * FROM {table}");
                let mut stmt = conn.prepare(&sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    for i in 0..columns {
                        let v: rusqlite::types::Value = row.get(i)?;
                        let _ = writeln!(out, "{table}:{v:?}");
                    }
                }
            }
            Ok(out)
        })
        .await
        .expect("dump")
}

/// The admin records of the audit trail: (type, actor), oldest first.
async fn audit_trail(app: &TestApp) -> Vec<(String, String)> {
    app.db
        .call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT event_type, json_extract(event, '$.actor_id') FROM webhook_events
                 WHERE provider = 'admin' ORDER BY id",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_extend_lookup_and_revoke_move_the_role_and_are_logged_with_who_did_it() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let (app, _) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    let t0 = now_ms();

    let reply = admin(
        &discord,
        OWNER,
        "grant",
        &[
            ("member", json!(MEMBER.to_string())),
            ("tier", json!(SUPPORTER.to_string())),
            ("days", json!(7)),
        ],
    )
    .await;
    assert!(text(&reply).contains("Granted"), "{reply:?}");
    discord
        .wait_for_member_role(GUILD, MEMBER, SUPPORTER, true, WAIT)
        .await
        .expect("role PUT");
    let end = comp_end(&app).await.expect("an end date");
    assert!((end - (t0 + 7 * DAY_MS)).abs() < 60_000, "{end}");
    let line = log_line(&discord, "granted").await;
    assert!(
        line.contains(&format!("<@{OWNER}>")) && line.contains(&format!("<@{MEMBER}>")),
        "{line}"
    );

    let reply = admin(
        &discord,
        OWNER,
        "extend",
        &[("member", json!(MEMBER.to_string())), ("days", json!(3))],
    )
    .await;
    assert!(text(&reply).contains("Extended"), "{reply:?}");
    assert_eq!(comp_end(&app).await, Some(end + 3 * DAY_MS));
    log_line(&discord, "extended").await;

    let reply = admin(
        &discord,
        OWNER,
        "lookup",
        &[("member", json!(MEMBER.to_string()))],
    )
    .await;
    let history = text(&reply);
    let (extend, grant) = (history.find("admin.extend"), history.find("admin.grant"));
    assert!(
        extend.is_some() && grant.is_some() && extend < grant,
        "newest first: {history}"
    );
    assert!(history.contains("role given"), "{history}");

    let reply = admin(
        &discord,
        OWNER,
        "revoke",
        &[
            ("member", json!(MEMBER.to_string())),
            ("reason", json!("left the team")),
        ],
    )
    .await;
    assert!(text(&reply).contains("Revoked"), "{reply:?}");
    assert!(
        !text(&reply).contains("still billed"),
        "a comp is not billed: {reply:?}"
    );
    discord
        .wait_for_member_role(GUILD, MEMBER, SUPPORTER, false, WAIT)
        .await
        .expect("role DELETE");
    assert!(
        log_line(&discord, "revoked")
            .await
            .contains("left the team")
    );
    // The audit trail: one record per action, each naming who did it.
    let actors = audit_trail(&app).await;
    let owner = OWNER.to_string();
    assert_eq!(
        actors,
        [
            ("admin.grant".into(), owner.clone()),
            ("admin.extend".into(), owner.clone()),
            ("admin.revoke".into(), owner)
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM subscriptions WHERE status = 'revoked'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_subscription_revoked_by_the_owner_is_said_to_stay_billed() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let (app, path) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    buy(&app, &path, "msg_admin_buy").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("bought");
    let reply = admin(
        &discord,
        OWNER,
        "revoke",
        &[("member", json!(BUYER.to_string()))],
    )
    .await;
    assert!(
        text(&reply).contains("polar subscription is still billed"),
        "{reply:?}"
    );
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, false, WAIT)
        .await
        .expect("removed");
    // The provider's next renewal does not bring it back.
    let late = polar_event("subscription.updated", "active", false, now_ms() + 1000);
    let response = crate::bot::deliver_polar(&app, &path, "msg_admin_renew", &late).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        app.count("SELECT count(*) FROM subscriptions WHERE status = 'revoked'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_manage_server_admin_is_refused_privately_and_changes_nothing() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let (app, _) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    let reply = admin(
        &discord,
        MEMBER,
        "grant",
        &[
            ("member", json!(MEMBER.to_string())),
            ("tier", json!(SUPPORTER.to_string())),
        ],
    )
    .await;
    assert!(text(&reply).contains("Manage Server"), "{reply:?}");
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM webhook_events").await, 0);
    // The command is registered for Manage Server only.
    let registered = discord.commands(None);
    let admin_cmd = registered
        .iter()
        .find(|c| c["name"] == "admin")
        .expect("registered");
    assert_eq!(admin_cmd["default_member_permissions"], json!("32"));
}

/// `/admin tier` and `/admin policy` as the owner: the paid role gives `chat` too, kicks
/// on end and ends access on a partial refund.
async fn tier_gives_chat_and_kicks(discord: &FakeDiscord, chat: u64) {
    admin(
        discord,
        OWNER,
        "tier",
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("add_role", json!(chat.to_string())),
            ("on_end", json!("kick")),
        ],
    )
    .await;
    admin(
        discord,
        OWNER,
        "policy",
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("partial_refund", json!("revoke")),
        ],
    )
    .await;
}

/// The tier's end policy, refund policy and other roles, as `on_end:partial_refund:roles`.
async fn tier_settings(app: &TestApp) -> String {
    app.db
        .call(|conn| {
            Ok(conn.query_row(
                "SELECT p.on_end || ':' || p.partial_refund || ':' ||
                        coalesce((SELECT group_concat(role_id) FROM tier_roles t WHERE t.paid_role_id = p.id), '')
                 FROM paid_roles p",
                [],
                |r| r.get::<_, String>(0),
            )?)
        })
        .await
        .expect("tier settings")
}

/// Subscriptions as comparable text.
async fn snapshot(app: &TestApp) -> String {
    app.db
        .call(|conn| {
            Ok(conn.query_row(
                "SELECT group_concat(user_id || ':' || provider || ':' || coalesce(external_id, '') || ':' ||
                        status || ':' || coalesce(period_end, 0), '|')
                 FROM (SELECT * FROM subscriptions ORDER BY user_id, provider)",
                [],
                |r| r.get::<_, Option<String>>(0),
            )?
            .unwrap_or_default())
        })
        .await
        .expect("snapshot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_instance_brings_everyone_back_and_twice_changes_nothing() {
    const CHAT: u64 = 3100;
    let discord = Arc::new(
        FakeDiscord::builder()
            .guild(
                crate::bot::shop().role(docobo_testkit::discord::RoleSpec::new(CHAT, "Chat", 1, 0)),
            )
            .start()
            .await
            .expect("fake Discord"),
    );
    let api = polar_api().await;
    let (app, path) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    // The tier gives a second role and has both policies changed: all of it travels.
    tier_gives_chat_and_kicks(&discord, CHAT).await;
    assert_eq!(tier_settings(&app).await, format!("kick:revoke:{CHAT}"));
    buy(&app, &path, "msg_export_buy").await;
    admin(
        &discord,
        OWNER,
        "grant",
        &[
            ("member", json!(MEMBER.to_string())),
            ("tier", json!(SUPPORTER.to_string())),
            ("days", json!(10)),
        ],
    )
    .await;
    let before = snapshot(&app).await;
    let reply = admin(&discord, OWNER, "export", &[]).await;
    assert!(text(&reply).contains("2 entitlement(s)"), "{reply:?}");
    let attachment = reply.body["attachments"][0].clone();
    assert_eq!(
        attachment["filename"],
        json!(format!("docobo-export-{GUILD}.jsonl"))
    );
    let file = discord.attachment_bytes(&attachment).expect("file sent");
    let file_text = String::from_utf8(file.clone()).expect("utf-8");
    assert!(
        file_text.starts_with("{\"type\":\"header\",\"format\":\"docobo-export\",\"version\":2"),
        "{file_text}"
    );
    assert!(
        !file_text.contains("buyer") && !file_text.contains('@'),
        "no names: {file_text}"
    );
    log_line(&discord, "exported").await;
    drop(app.stop().await);

    // A new Docobo, same server: it sells nothing yet; the file brings the tier too.
    let (fresh, _) = shop(&discord, &api).await;
    // The fake still has the commands the first app registered: wait for the new session.
    discord
        .wait_for_gateway("the fresh app's session", WAIT, |g| g.identifies >= 2)
        .await
        .expect("connected");
    let upload = discord.upload("docobo-export.jsonl", file.clone());
    let reply = admin(
        &discord,
        OWNER,
        "import",
        &[("file", json!(upload.to_string()))],
    )
    .await;
    assert!(
        text(&reply).contains("2 new, 0 lengthened, 0 unchanged, 0 skipped; 1 tier(s) added"),
        "{reply:?}"
    );
    assert_eq!(snapshot(&fresh).await, before);
    assert_eq!(tier_settings(&fresh).await, format!("kick:revoke:{CHAT}"));
    log_line(&discord, "imported").await;
    let upload = discord.upload("docobo-export.jsonl", file);
    let reply = admin(
        &discord,
        OWNER,
        "import",
        &[("file", json!(upload.to_string()))],
    )
    .await;
    assert!(
        text(&reply).contains("0 new, 0 lengthened, 2 unchanged"),
        "{reply:?}"
    );
    assert_eq!(snapshot(&fresh).await, before);
    assert_eq!(fresh.count("SELECT count(*) FROM paid_roles").await, 1);

    // Not a Docobo file: refused with the reason, nothing imported.
    let upload = discord.upload("x.jsonl", b"{\"hello\":1}\n".to_vec());
    let reply = admin(
        &discord,
        OWNER,
        "import",
        &[("file", json!(upload.to_string()))],
    )
    .await;
    assert!(text(&reply).contains("line 1"), "{reply:?}");
    assert_eq!(snapshot(&fresh).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_polar_brings_its_current_subscribers_without_a_new_purchase() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let item = serde_json::from_slice::<Value>(&polar_event(
        "subscription.active",
        "active",
        false,
        now_ms(),
    ))
    .expect("json")["data"]
        .clone();
    let mut stranger = item.clone();
    stranger["id"] = json!("sub_elsewhere");
    stranger["metadata"] = json!({});
    stranger["customer"]["external_id"] = Value::Null;
    api.respond(
        "GET",
        "/v1/subscriptions/",
        200,
        &json!({"items": [item, stranger], "pagination": {"total_count": 2, "max_page": 1}}),
    );
    let (app, _) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    let reply = admin(&discord, OWNER, "import", &[("from_provider", json!(true))]).await;
    assert!(text(&reply).contains("1 new"), "{reply:?}");
    assert!(
        text(&reply).contains("sub_elsewhere: no Discord user id"),
        "{reply:?}"
    );
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("role PUT");
    assert!(api.requests().iter().any(|r| {
        r.path == "/v1/subscriptions/"
            && r.query
                .as_deref()
                .is_some_and(|q| q.contains("active=true"))
    }));
    // Its webhooks find it: it was imported in the guild's own scope.
    let sub = crate::bot::the_subscription(&app).await;
    assert_eq!(sub.scope, docobo::domain::Scope::Guild(guild()));
    let reply = admin(&discord, OWNER, "import", &[("from_provider", json!(true))]).await;
    assert!(
        text(&reply).contains("0 new, 0 lengthened, 1 unchanged"),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_removes_the_role_and_leaves_nothing_with_the_members_id() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let (app, path) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    buy(&app, &path, "msg_forget_buy").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("bought");
    admin(
        &discord,
        OWNER,
        "lookup",
        &[("member", json!(BUYER.to_string()))],
    )
    .await;
    let id = BUYER.to_string();
    assert!(all_text(&app).await.contains(&id));
    let reply = admin(&discord, OWNER, "forget", &[("member", json!(id.clone()))]).await;
    assert!(text(&reply).contains("Deleted"), "{reply:?}");
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, false, WAIT)
        .await
        .expect("role removed");
    let left = all_text(&app).await;
    assert!(
        !left.contains(&id),
        "the member's id is still stored:\n{left}"
    );
    // The money stays countable.
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE provider = 'polar' AND json_extract(event, '$.amount.minor_units') = 500").await,
        1
    );
    assert!(!log_line(&discord, "personal data").await.contains(&id));
    let reply = admin(&discord, OWNER, "forget", &[("member", json!(id))]).await;
    assert!(text(&reply).contains("nothing to forget"), "{reply:?}");
}

/// Issue 21, item 6: while the owner has paused enforcement, a verified end of access (here
/// Polar's revocation) is recorded but takes no role away, the sweep's re-check included;
/// `/admin resume` catches up and removes it. Both actions are in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_enforcement_is_paused_nothing_is_removed_and_resume_catches_up() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let (app, path) = shop(&discord, &api).await;
    sell_supporter(&app).await;
    buy(&app, &path, "msg_pause_buy").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("bought");

    let reply = admin(&discord, OWNER, "pause", &[]).await;
    assert!(text(&reply).contains("Enforcement paused"), "{reply:?}");
    log_line(&discord, "paused enforcement").await;
    let again = admin(&discord, OWNER, "pause", &[]).await;
    assert!(text(&again).contains("already paused"), "{again:?}");

    let revoked = polar_event("subscription.revoked", "revoked", false, now_ms() + 1000);
    let response = crate::bot::deliver_polar(&app, &path, "msg_pause_revoke", &revoked).await;
    assert_eq!(response.status(), 202);
    // The state is recorded and role sync has looked at it (the row is not due any more)...
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let settled = app
            .count(
                "SELECT count(*) FROM subscriptions
                 WHERE status = 'revoked' AND role_applied = 1 AND next_sync_at IS NULL",
            )
            .await;
        if settled == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never synced");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // ...an owner's own revoke waits too, and says so...
    let reply = admin(
        &discord,
        OWNER,
        "grant",
        &[
            ("member", json!(MEMBER.to_string())),
            ("tier", json!(SUPPORTER.to_string())),
        ],
    )
    .await;
    assert!(
        text(&reply).contains("Granted"),
        "purchases and grants still give roles: {reply:?}"
    );
    discord
        .wait_for_member_role(GUILD, MEMBER, SUPPORTER, true, WAIT)
        .await
        .expect("granted while paused");
    let reply = admin(
        &discord,
        OWNER,
        "revoke",
        &[("member", json!(MEMBER.to_string()))],
    )
    .await;
    assert!(
        text(&reply).contains("stays until you run /admin resume"),
        "{reply:?}"
    );
    // ...and nothing was taken away at Discord.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        discord.count_requests("DELETE", "/guilds/*/members/*/roles/*"),
        0
    );
    assert_eq!(
        discord
            .member_roles(GUILD, BUYER)
            .map(|r| r.contains(&SUPPORTER)),
        Some(true)
    );

    let reply = admin(&discord, OWNER, "resume", &[]).await;
    assert!(text(&reply).contains("Enforcement resumed"), "{reply:?}");
    for user in [BUYER, MEMBER] {
        discord
            .wait_for_member_role(GUILD, user, SUPPORTER, false, WAIT)
            .await
            .expect("removed after resume");
    }
    log_line(&discord, "resumed enforcement").await;
    let again = admin(&discord, OWNER, "resume", &[]).await;
    assert!(text(&again).contains("not paused"), "{again:?}");
    let trail: Vec<String> = audit_trail(&app)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        trail,
        ["admin.pause", "admin.grant", "admin.revoke", "admin.resume"]
    );
}

/// The value of the `/metrics` line that starts with `series` (labels included), if any.
fn metric(text: &str, series: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Issue 21, item 7: `/metrics` has the shop's figures, with bounded labels: members per
/// tier, their ends in the last 30 days (churn), and this month's revenue per currency, as
/// the store has them, counted again after a change; only behind `server.metrics_token`,
/// as they name guilds and their revenue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_members_per_tier_their_ends_and_the_months_revenue() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(
        &discord,
        &[("DOCOBO_SERVER__METRICS_TOKEN", "metrics-token")],
    )
    .await;
    let path = connect_polar(&app, &api).await;
    sell_supporter(&app).await;
    let scrape = || async {
        app.client
            .get(app.url("/metrics"))
            .bearer_auth("metrics-token")
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text")
    };
    let tier = format!("{{guild=\"{GUILD}\",role=\"{SUPPORTER}\"}}");
    let members = format!("docobo_shop_members{tier}");
    let ended = format!("docobo_shop_ended_30d{tier}");
    assert_eq!(metric(&scrape().await, &members), None, "nothing sold yet");

    buy(&app, &path, "msg_metrics_buy").await;
    let text = scrape().await;
    assert_eq!(metric(&text, &members), Some(1), "{text}");
    assert_eq!(metric(&text, &ended), Some(0), "{text}");
    let (currency, minor): (String, i64) = app
        .db
        .call(|conn| {
            Ok(conn.query_row(
                "SELECT currency, sum(minor_units) FROM revenue_months GROUP BY currency",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .expect("revenue");
    assert!(minor > 0, "the purchase earned something");
    assert_eq!(
        metric(
            &text,
            &format!("docobo_shop_revenue_month_minor_units{{currency=\"{currency}\"}}")
        ),
        Some(minor),
        "{text}"
    );

    let revoked = polar_event("subscription.revoked", "revoked", false, now_ms() + 1000);
    let response = crate::bot::deliver_polar(&app, &path, "msg_metrics_revoke", &revoked).await;
    assert_eq!(response.status(), 202);
    let text = scrape().await;
    assert_eq!(metric(&text, &members), Some(0), "{text}");
    assert_eq!(metric(&text, &ended), Some(1), "{text}");
    app.stop().await;

    // Public metrics (no token) have none of it.
    let (public, path) = shop(&discord, &api).await;
    buy(&public, &path, "msg_metrics_public").await;
    let text = public
        .client
        .get(public.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(text.contains("docobo_webhooks_total"), "{text}");
    assert!(!text.contains("docobo_shop_"), "{text}");
}
