//! Reminders before access ends (issue 21, item 5), end to end: the real reminder task and
//! role sync on the app's clock, the real SePay and Polar components (Polar's API a fake),
//! direct messages and button clicks at the fake Discord, a real SQLite file.

use std::time::Duration;

use docobo::clock::Clock;
use docobo::domain::{Billing, GuildId, RoleId};
use docobo_testkit::discord::{Fault, FaultRule, SentMessage};
use docobo_testkit::webhooks::sepay_request;
use serde_json::{Value, json};

use crate::app::TestApp;
use crate::bot::{
    BUYER, DAY_MS, GUILD, POLAR_SECRET, PRODUCT, SUPPORTER, WAIT, deliver_polar, fake_discord,
    join_and_pick, now_ms, polar_api, polar_event, reply, sepay_transfer, start_app_at,
};

const HOUR_MS: i64 = 3_600_000;
const SEPAY_KEY: &str = "sepay-reminder-key";
/// Reminders looked for every second, three days before an end.
const REMINDER_ENV: &[(&str, &str)] = &[
    ("DOCOBO_SUBSCRIPTIONS__REMINDER_CHECK_SECS", "1"),
    ("DOCOBO_SUBSCRIPTIONS__REMINDER_HOURS", "72"),
];

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// The DMs the bot sent BUYER so far.
fn dms(discord: &docobo_testkit::FakeDiscord) -> Vec<SentMessage> {
    discord
        .sent_messages()
        .into_iter()
        .filter(|m| m.recipient_id == Some(BUYER))
        .collect()
}

/// Waits until BUYER has `n` DMs; returns the newest.
async fn nth_dm(discord: &docobo_testkit::FakeDiscord, n: usize) -> SentMessage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = dms(discord);
        if all.len() >= n {
            return all[n - 1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no DM number {n}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn content(dm: &SentMessage) -> String {
    dm.message["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn custom_ids(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["components"].as_array())
        .flatten()
        .filter_map(|c| c["custom_id"].as_str().map(str::to_owned))
        .collect()
}

/// The reminders of the audit trail: (type, delivered), oldest first.
async fn reminder_trail(app: &TestApp) -> Vec<(String, bool)> {
    app.db
        .call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT event_type, json_extract(event, '$.delivered') FROM webhook_events
                 WHERE event_type LIKE 'reminder.%' ORDER BY id",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("trail")
}

/// [`reminder_trail`] once it has `n` entries (a reminder is recorded after it is sent).
async fn trail_of(app: &TestApp, n: usize) -> Vec<(String, bool)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let trail = reminder_trail(app).await;
        if trail.len() >= n {
            return trail;
        }
        assert!(tokio::time::Instant::now() < deadline, "{trail:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pass_end(app: &TestApp) -> i64 {
    app.db
        .call(|conn| {
            Ok(conn.query_row(
                "SELECT period_end FROM subscriptions WHERE payment_code IS NOT NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("pass end")
}

#[allow(clippy::too_many_lines, reason = "one pass's reminders, step by step")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_about_to_end_is_reminded_once_with_a_qr_that_extends_it_and_can_be_stopped() {
    let discord = fake_discord().await;
    let app = start_app_at(&discord, REMINDER_ENV, Clock::fixed(now_ms())).await;
    let key = app
        .add_guild(
            guild(),
            "sepay",
            &[
                ("webhook_api_key", SEPAY_KEY),
                ("account_number", "0359123456"),
                ("bank", "MBBank"),
            ],
        )
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(SUPPORTER).expect("role"),
        (50_000, "VND"),
        Billing::parse("days:30").expect("billing"),
        None,
    )
    .await;
    let path = format!("/webhooks/sepay/{key}");
    // /join, then the transfer: a 30-day pass.
    let checkout = reply(&discord, &join_and_pick(&discord).await).await;
    let code = checkout.body.to_string();
    let code = code
        .split("DCB")
        .nth(1)
        .map(|rest| {
            format!(
                "DCB{}",
                rest.chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
            )
        })
        .expect("a payment code");
    let pay = |id: i64| {
        sepay_request(
            &app.client,
            &app.url(&path),
            SEPAY_KEY,
            sepay_transfer(id, &code, 50_000),
        )
        .send()
    };
    assert_eq!(pay(7001).await.expect("send").status(), 200);
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("pass granted");
    let end = pass_end(&app).await;

    // Four days before the end: nothing yet.
    app.advance(end - 96 * HOUR_MS - app.services.now());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(dms(&discord).is_empty(), "too early: {:?}", dms(&discord));

    // Three days before: one DM, with the QR of a transfer with the pass's own code.
    app.advance(25 * HOUR_MS);
    let dm = nth_dm(&discord, 1).await;
    let text = content(&dm);
    assert!(text.contains("pass") && text.contains("ends"), "{text}");
    let embed = &dm.message["embeds"][0];
    assert!(
        embed["image"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("qr.sepay.vn") && u.contains(&code)),
        "{embed}"
    );
    assert!(embed.to_string().contains("50"), "the amount: {embed}");
    let stop = format!("reminders:off:{GUILD}");
    assert!(custom_ids(&dm.message).contains(&stop), "{:?}", dm.message);
    assert_eq!(
        trail_of(&app, 1).await,
        [("reminder.pass_ending".to_owned(), true)]
    );

    // Later passes, and a restart, send nothing more for this end.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let app = app.restart().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(dms(&discord).len(), 1, "{:?}", dms(&discord));

    // Renewed early through the reminder's QR: extended from the current end, and the new
    // end gets its own reminder when its time comes.
    let path = format!("/webhooks/sepay/{key}");
    let response = sepay_request(
        &app.client,
        &app.url(&path),
        SEPAY_KEY,
        sepay_transfer(7002, &code, 50_000),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 200);
    let renewed = pass_end(&app).await;
    assert_eq!(renewed, end + 30 * DAY_MS);
    app.advance(renewed - 71 * HOUR_MS - app.services.now());
    let second = nth_dm(&discord, 2).await;
    assert!(content(&second).contains("ends"), "{second:?}");

    // "Stop reminders": recorded, and answered with a way back.
    let click = discord
        .click_dm_button(GUILD, BUYER, &second, &stop)
        .expect("click");
    let answer = reply(&discord, &click).await;
    assert!(
        answer
            .content()
            .is_some_and(|t| t.contains("Reminders stopped")),
        "{answer:?}"
    );
    assert!(
        answer
            .custom_ids()
            .contains(&format!("reminders:on:{GUILD}")),
        "{answer:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM members WHERE reminders = 0")
            .await,
        1
    );
    // Renewed again: no reminder for that end.
    let response = sepay_request(
        &app.client,
        &app.url(&path),
        SEPAY_KEY,
        sepay_transfer(7003, &code, 50_000),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), 200);
    app.advance(pass_end(&app).await - 71 * HOUR_MS - app.services.now());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(dms(&discord).len(), 2, "stopped: {:?}", dms(&discord));
    assert_eq!(reminder_trail(&app).await.len(), 2);
    discord.assert_no_schema_violations();
    app.stop().await;
}

/// A failed card payment (Polar `past_due`) is told at once, with Polar's customer portal
/// (the plugin's `manage-link`) to fix the card; a member whose DMs are closed is recorded as
/// not reached, and not retried.
#[allow(
    clippy::too_many_lines,
    reason = "one subscription's failed payments, step by step"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_card_payment_is_told_once_with_the_providers_page_to_fix_it() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    api.respond(
        "POST",
        "/v1/customer-sessions/",
        201,
        &json!({"customer_portal_url": "https://polar.sh/portal/session_e2e"}),
    );
    let app = start_app_at(&discord, REMINDER_ENV, Clock::System).await;
    let key = app
        .add_guild(
            guild(),
            "polar",
            &[
                ("webhook_secret", POLAR_SECRET),
                ("access_token", "polar_oat_x"),
                ("api_url", &api.url),
            ],
        )
        .await;
    app.add_paid_role(
        guild(),
        RoleId::new(SUPPORTER).expect("role"),
        (500, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    let path = format!("/webhooks/polar/{key}");
    let active = polar_event("subscription.active", "active", false, now_ms());
    assert_eq!(
        deliver_polar(&app, &path, "msg_rem_buy", &active)
            .await
            .status(),
        202
    );
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("bought");
    // A renewing card subscription far from its end: no reminder.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(dms(&discord).is_empty(), "{:?}", dms(&discord));

    // Discord fails the first send: the reminder stays claimed and goes out on the next
    // pass, with the same nonce (so Discord would drop it had the first arrived).
    discord.inject_fault(
        FaultRule::new(
            "POST",
            "/channels/*/messages",
            Fault::error(500, 0, "500: Internal Server Error"),
        )
        .once(),
    );
    let failed = polar_event("subscription.updated", "past_due", false, now_ms() + 1000);
    assert_eq!(
        deliver_polar(&app, &path, "msg_rem_due", &failed)
            .await
            .status(),
        202
    );
    let dm = nth_dm(&discord, 1).await;
    assert!(
        content(&dm).contains("payment") && content(&dm).contains("failed"),
        "{dm:?}"
    );
    let nonces: Vec<Value> = discord
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|body| body["enforce_nonce"] == json!(true))
        .map(|body| body["nonce"].clone())
        .collect();
    assert!(
        nonces.len() >= 2 && nonces.iter().all(|n| *n == nonces[0] && n.is_string()),
        "{nonces:?}"
    );
    let link = dm.message["components"].to_string();
    assert!(
        link.contains("https://polar.sh/portal/session_e2e"),
        "{link}"
    );
    assert!(link.contains("Fix my payment"), "{link}");
    assert_eq!(
        trail_of(&app, 1).await,
        [("reminder.past_due".to_owned(), true)]
    );
    // The role stays through the grace period.
    assert_eq!(
        discord
            .member_roles(GUILD, BUYER)
            .map(|r| r.contains(&SUPPORTER)),
        Some(true)
    );

    // Fixed, then failing again for a later period, with DMs closed: recorded as not
    // reached, once.
    let fixed = polar_event("subscription.updated", "active", false, now_ms() + 2000);
    assert_eq!(
        deliver_polar(&app, &path, "msg_rem_fixed", &fixed)
            .await
            .status(),
        202
    );
    discord.set_dms_closed(BUYER, true);
    let mut again = polar_event("subscription.updated", "past_due", false, now_ms() + 3000);
    let mut value: Value = serde_json::from_slice(&again).expect("json");
    value["data"]["current_period_end"] = json!(
        jiff::Timestamp::from_millisecond(now_ms() + 60 * DAY_MS)
            .expect("time")
            .to_string()
    );
    again = serde_json::to_vec(&value).expect("json");
    assert_eq!(
        deliver_polar(&app, &path, "msg_rem_due2", &again)
            .await
            .status(),
        202
    );
    trail_of(&app, 2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        reminder_trail(&app).await,
        [
            ("reminder.past_due".to_owned(), true),
            ("reminder.past_due".to_owned(), false)
        ]
    );
    assert_eq!(dms(&discord).len(), 1);
    app.stop().await;
}
