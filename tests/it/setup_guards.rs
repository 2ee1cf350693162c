//! `/setup`'s guards, end to end against the fake Discord: a price in a currency the
//! provider does not take, products kept across a change of provider account, no
//! `server.public_url`, and "Verify now" waiting for the first webhook delivery.

use std::sync::Arc;

use docobo::clock::Clock;
use docobo_testkit::discord::{FakeDiscord, InteractionHandle, Reply, ReplyKind, SlashCommand};
use docobo_testkit::webhooks::PolarKey;
use serde_json::json;

use crate::bot::{
    BOT_ENV, GUILD, OWNER, POLAR_SECRET, PUBLIC_URL, SUPPORTER, WAIT, buy, fake_discord, now_ms,
    polar_api, polar_credentials, polar_event, reply, run_setup, setup_polar, start_app,
    start_app_with, webhook_path,
};
use crate::fake_api::FakeApi;

const PRICE: &str = "4.99 USD monthly";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sepay_refuses_a_usd_price_at_the_pick_and_names_vnd() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let first = discord
        .run_slash_command(&SlashCommand::new(GUILD, OWNER, "setup"), WAIT)
        .await
        .expect("/setup answers");
    let click = discord
        .click_component(
            GUILD,
            OWNER,
            &first,
            "setup:roles",
            &[&SUPPORTER.to_string()],
        )
        .expect("pick roles");
    let modal = reply(&discord, &click).await;
    let price = format!("price:{SUPPORTER}");
    let submit = discord
        .submit_modal(GUILD, OWNER, &modal, &[(&price, PRICE)])
        .expect("prices");
    let pick = reply(&discord, &submit).await;
    let click = discord
        .click_component(GUILD, OWNER, &pick, "setup:provider", &["sepay"])
        .expect("pick SePay");
    // Refused before any credential is asked for, with the currency it takes and the fix.
    let refused = reply(&discord, &click).await;
    assert_ne!(refused.kind, ReplyKind::Modal, "{refused:?}");
    let text = refused.content().expect("text");
    assert!(text.contains("takes prices in VND only"), "{text}");
    assert!(
        text.contains(&format!("<@&{SUPPORTER}>: {PRICE}")),
        "{text}"
    );
    assert!(text.contains("price them in VND"), "{text}");
    let ids = refused.custom_ids();
    assert!(ids.contains(&"setup:prices:0".to_owned()), "{ids:?}");
    assert!(ids.contains(&"setup:provider".to_owned()), "{ids:?}");
    assert_eq!(app.count("SELECT count(*) FROM paid_roles").await, 0);

    // The fix: the price in dong, and SePay is taken.
    let fix = discord
        .click_component(GUILD, OWNER, &refused, "setup:prices:0", &[])
        .expect("fix");
    let modal = reply(&discord, &fix).await;
    let submit = discord
        .submit_modal(GUILD, OWNER, &modal, &[(&price, "50000 VND 30 days")])
        .expect("prices");
    let pick = reply(&discord, &submit).await;
    let click = discord
        .click_component(GUILD, OWNER, &pick, "setup:provider", &["sepay"])
        .expect("pick SePay");
    let creds = reply(&discord, &click).await;
    assert_eq!(creds.modal_id(), Some("setup:creds:0"), "{creds:?}");
    discord.assert_no_schema_violations();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_amount_for_the_currency_says_how_to_write_it() {
    let discord = fake_discord().await;
    let app = start_app(&discord, &[]).await;
    let first = discord
        .run_slash_command(&SlashCommand::new(GUILD, OWNER, "setup"), WAIT)
        .await
        .expect("/setup answers");
    let click = discord
        .click_component(
            GUILD,
            OWNER,
            &first,
            "setup:roles",
            &[&SUPPORTER.to_string()],
        )
        .expect("pick roles");
    let modal = reply(&discord, &click).await;
    for (typed, fix) in [
        ("49.99 VND 30 days", "write a whole number (e.g. 50000"),
        ("4.999 USD", "round it, e.g. 4.99"),
    ] {
        let submit = discord
            .submit_modal(
                GUILD,
                OWNER,
                &modal,
                &[(&format!("price:{SUPPORTER}"), typed)],
            )
            .expect("prices");
        let answer = reply(&discord, &submit).await;
        let text = answer.content().expect("text");
        assert!(text.contains(fix), "{typed}: {text}");
        assert!(answer.custom_ids().contains(&"setup:prices:0".to_owned()));
    }
    app.stop().await;
}

fn product_posts(api: &FakeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/products/")
        .count()
}

/// `/setup` again with Polar, the same price, and `changes` over the first credentials.
async fn setup_polar_again(discord: &FakeDiscord, api: &FakeApi, changes: &[(&str, &str)]) {
    let mut creds = polar_credentials(api);
    for (key, value) in changes {
        if let Some(slot) = creds.iter_mut().find(|(k, _)| k == key) {
            (*value).clone_into(&mut slot.1);
        }
    }
    let creds: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = run_setup(
        discord,
        &[&SUPPORTER.to_string()],
        &[(&format!("price:{SUPPORTER}"), PRICE)],
        "polar",
        &creds,
    )
    .await;
    let text = done.content().expect("text");
    assert!(text.contains("Saved"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_polar_from_sandbox_to_production_creates_a_new_product() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(&discord, &[]).await;
    let product = || async {
        app.db
            .call(|conn| {
                Ok(
                    conn.query_row("SELECT product_ref FROM paid_roles", [], |r| {
                        r.get::<_, Option<String>>(0)
                    })?,
                )
            })
            .await
            .expect("read")
    };
    setup_polar(&discord, &api).await;
    assert_eq!(product_posts(&api), 1);
    assert_eq!(product().await.as_deref(), Some("prod_e2e"));

    // The same account and price: the product is kept, also when the webhook secret rotates.
    setup_polar_again(&discord, &api, &[]).await;
    setup_polar_again(
        &discord,
        &api,
        &[("cred:webhook_secret", "polar_whs_rotated")],
    )
    .await;
    assert_eq!(product_posts(&api), 1, "kept in the same account");

    // Production, same price: the sandbox product would fail every checkout.
    api.respond("POST", "/v1/products/", 201, &json!({"id": "prod_live"}));
    setup_polar_again(&discord, &api, &[("cred:environment", "production")]).await;
    assert_eq!(
        product_posts(&api),
        2,
        "a product in the production account"
    );
    assert_eq!(product().await.as_deref(), Some("prod_live"));
    let stored: String = app
        .db
        .call(|conn| Ok(conn.query_row("SELECT settings FROM guilds", [], |r| r.get(0))?))
        .await
        .expect("settings");
    assert!(
        !stored.contains("polar_oat") && !stored.contains("production"),
        "only a hash is stored: {stored}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_public_url_setup_saves_and_tells_the_operator_what_to_set() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let env: Vec<(&str, &str)> = BOT_ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "DOCOBO_SERVER__PUBLIC_URL")
        .collect();
    let app = start_app_with(&discord, &env, Clock::System).await;
    let done = setup_polar(&discord, &api).await;
    let text = done.content().expect("text");
    assert!(text.contains("Saved"), "{text}");
    assert!(text.contains("`server.public_url`"), "{text}");
    assert!(text.contains("DOCOBO_SERVER__PUBLIC_URL"), "{text}");
    assert!(!text.contains("/webhooks/"), "no placeholder URL: {text}");
    assert!(
        !done.custom_ids().contains(&"setup:verify".to_owned()),
        "nothing to verify without a URL: {done:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM paid_roles").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_public_url_is_warned_about() {
    let discord = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(
        &discord,
        &[("DOCOBO_SERVER__PUBLIC_URL", "http://docobo.example.org")],
    )
    .await;
    let done = setup_polar(&discord, &api).await;
    let text = done.content().expect("text");
    assert!(
        text.contains("`http://docobo.example.org/webhooks/polar/"),
        "{text}"
    );
    assert!(text.contains("providers send webhooks to https"), "{text}");
    app.stop().await;
}

/// Presses "Verify now" (or "Verify again") on `on`, and waits until Docobo acknowledged it,
/// so that it is watching before the test delivers.
async fn press_verify(discord: &FakeDiscord, on: &Reply) -> InteractionHandle {
    let press = discord
        .click_component(GUILD, OWNER, on, "setup:verify", &[])
        .expect("verify");
    let callback = format!("/interactions/{}/{}/callback", press.id, press.token);
    discord
        .wait_for_request("POST", &callback, WAIT)
        .await
        .expect("acknowledged");
    press
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_now_reports_a_bad_secret_a_verified_delivery_and_silence() {
    let discord: Arc<FakeDiscord> = fake_discord().await;
    let api = polar_api().await;
    let app = start_app(&discord, &[("DOCOBO_SERVER__VERIFY_WAIT_SECS", "4")]).await;
    let done = setup_polar(&discord, &api).await;
    let path = webhook_path(&done, "polar");
    assert!(
        done.content().expect("text").contains("Verify now"),
        "{done:?}"
    );

    // Signed with another secret: the owner hears that the secrets differ.
    let press = press_verify(&discord, &done).await;
    let body = polar_event("subscription.active", "active", false, now_ms());
    let forged = PolarKey::utf8("polar_whs_not_the_one")
        .delivery_now("msg_forged", body)
        .request(&app.client, &app.url(&path))
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status(), 403);
    let told = reply(&discord, &press).await;
    assert_eq!(told.kind, ReplyKind::EditOriginal, "{told:?}");
    assert!(told.is_ephemeral(), "{told:?}");
    let text = told.content().expect("text");
    assert!(
        text.contains("The secret in /setup does not match the one Polar shows"),
        "{text}"
    );
    assert!(!text.contains(POLAR_SECRET), "{text}");

    // Signed with the secret in /setup: verified, with the event's type.
    let press = press_verify(&discord, &told).await;
    buy(&app, &path, "msg_good").await;
    let told = reply(&discord, &press).await;
    let text = told.content().expect("text");
    assert!(text.contains("✅ **Verified.**"), "{text}");
    assert!(text.contains("`subscription.active`: applied"), "{text}");

    // Nothing within the wait: where to look.
    let press = press_verify(&discord, &told).await;
    let told = reply(&discord, &press).await;
    let text = told.content().expect("text");
    assert!(text.contains("Nothing arrived"), "{text}");
    assert!(text.contains(&format!("`{PUBLIC_URL}{path}`")), "{text}");
    assert!(text.contains("server.public_url"), "{text}");
    discord.assert_no_schema_violations();
    app.stop().await;
}
