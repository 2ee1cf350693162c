//! The loopback fake Discord (`docobo-testkit`) against real serenity 0.12.5: connect, READY and
//! `GUILD_CREATE`, command registration, interactions, role changes and their errors, reconnects,
//! close codes, faults, and both contract checks (`OpenAPI` request schemas, serenity payloads).

use std::sync::Arc;
use std::time::Duration;

use docobo_testkit::discord::{
    FakeDiscord, Fault, FaultRule, GuildSpec, MANAGE_ROLES, MemberSpec, PayloadKind, ReplyKind,
    ResumePolicy, RoleSpec, RunningClient, SlashCommand, parse_with_serenity, sample_payloads,
};
use serde_json::json;
use serenity::all::{
    ActionRowComponent, ClientBuilder, CommandInteraction, CommandOptionType, ComponentInteraction,
    ComponentInteractionDataKind, Context, CreateActionRow, CreateButton, CreateCommand,
    CreateCommandOption, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateModal,
    CreateSelectMenu, CreateSelectMenuKind, EditInteractionResponse, Event, EventHandler,
    GatewayEvent, GatewayIntents, Guild, GuildId, GuildMemberUpdateEvent, HttpError,
    InputTextStyle, Interaction, Member, ModalInteraction, Permissions, Ready, ResumedEvent,
    RoleId, UserId,
};
use tokio::sync::mpsc;

/// Every wait in these tests is bounded by this, so a hang fails instead of stalling CI.
const WAIT: Duration = Duration::from_secs(20);

const GUILD: u64 = 2000;
const SUPPORTER: u64 = 3000;
const BOT_ROLE: u64 = 3001;
const ADMIN: u64 = 3002;
/// At the same position as the bot's top role: not below it, so not grantable.
const PEER: u64 = 3004;
const BUYER: u64 = 4000;

/// A guild where the bot can grant `SUPPORTER` (below its own role) but not `PEER` (level with
/// it) or `ADMIN` (above).
fn shop() -> GuildSpec {
    GuildSpec::new(GUILD, "Shop")
        .role(RoleSpec::new(SUPPORTER, "Supporter", 1, 0))
        .role(RoleSpec::new(BOT_ROLE, "Docobo", 2, MANAGE_ROLES).managed())
        .role(RoleSpec::new(ADMIN, "Admin", 5, 0))
        .role(RoleSpec::new(PEER, "Peer", 2, 0))
        .member(MemberSpec::new(BUYER, "buyer"))
        .bot_roles(&[BOT_ROLE])
}

/// What the bot's event handler saw.
#[derive(Debug)]
enum Seen {
    Ready {
        application_id: u64,
        guilds: usize,
    },
    GuildCreate {
        id: u64,
        roles: usize,
    },
    MemberUpdate {
        user: u64,
        roles: Vec<u64>,
    },
    Resumed,
    /// An interaction the bot failed to answer, with Discord's error code.
    AnswerFailed(Option<isize>),
}

/// A minimal paid-roles bot: `/setup` replies with a role select and a Buy button; Buy opens a
/// modal; submitting it grants `SUPPORTER`, tries `ADMIN`, and reports both outcomes.
struct Bot {
    seen: mpsc::UnboundedSender<Seen>,
}

fn error_code(e: &serenity::Error) -> Option<isize> {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => Some(r.error.code),
        _ => None,
    }
}

impl Bot {
    async fn command(ctx: &Context, cmd: &CommandInteraction) -> serenity::Result<()> {
        let rows = vec![
            CreateActionRow::SelectMenu(
                CreateSelectMenu::new(
                    "setup:roles",
                    CreateSelectMenuKind::Role {
                        default_roles: None,
                    },
                )
                .max_values(5),
            ),
            CreateActionRow::Buttons(vec![CreateButton::new("buy").label("Buy")]),
        ];
        let price = cmd
            .data
            .options
            .iter()
            .find(|o| o.name == "price")
            .and_then(|o| o.value.as_i64())
            .unwrap_or(0);
        let message = CreateInteractionResponseMessage::new()
            .content(format!("Pick roles (price {price})"))
            .ephemeral(true)
            .components(rows);
        cmd.create_response(ctx, CreateInteractionResponse::Message(message))
            .await
    }

    async fn component(ctx: &Context, click: &ComponentInteraction) -> serenity::Result<()> {
        if let ComponentInteractionDataKind::RoleSelect { values } = &click.data.kind {
            let names: Vec<String> = values.iter().map(ToString::to_string).collect();
            let update = CreateInteractionResponseMessage::new()
                .content(format!("Selected {}", names.join(",")));
            return click
                .create_response(ctx, CreateInteractionResponse::UpdateMessage(update))
                .await;
        }
        let modal =
            CreateModal::new("prices", "Prices").components(vec![CreateActionRow::InputText(
                CreateInputText::new(InputTextStyle::Short, "Price", "price"),
            )]);
        click
            .create_response(ctx, CreateInteractionResponse::Modal(modal))
            .await
    }

    async fn modal(ctx: &Context, submit: &ModalInteraction) -> serenity::Result<()> {
        submit.defer_ephemeral(ctx).await?;
        let price = submit
            .data
            .components
            .iter()
            .flat_map(|row| &row.components)
            .find_map(|c| match c {
                ActionRowComponent::InputText(t) if t.custom_id == "price" => t.value.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let guild = submit.guild_id.unwrap_or(GuildId::new(GUILD));
        let user = submit.user.id;
        let granted = ctx
            .http
            .add_member_role(guild, user, RoleId::new(SUPPORTER), Some("paid: $5 ✓"))
            .await;
        let above = ctx
            .http
            .add_member_role(guild, user, RoleId::new(ADMIN), None)
            .await;
        let report = format!(
            "price {price}; supporter {}; admin {}",
            granted
                .as_ref()
                .map_or_else(|e| format!("{:?}", error_code(e)), |()| "ok".into()),
            above
                .as_ref()
                .map_or_else(|e| format!("{:?}", error_code(e)), |()| "ok".into()),
        );
        submit
            .edit_response(ctx, EditInteractionResponse::new().content(report))
            .await?;
        let receipt = CreateInteractionResponseFollowup::new()
            .content("Receipt sent")
            .ephemeral(true);
        submit.create_followup(ctx, receipt).await.map(drop)
    }
}

#[serenity::async_trait]
impl EventHandler for Bot {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.seen.send(Seen::Ready {
            application_id: ready.application.id.get(),
            guilds: ready.guilds.len(),
        });
        let setup = CreateCommand::new("setup")
            .description("Set up paid roles")
            .default_member_permissions(Permissions::MANAGE_GUILD)
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "price", "Price")
                    .required(true),
            );
        GuildId::new(GUILD)
            .set_commands(&ctx.http, vec![setup])
            .await
            .expect("registering /setup");
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let _ = self.seen.send(Seen::GuildCreate {
            id: guild.id.get(),
            roles: guild.roles.len(),
        });
    }

    async fn guild_member_update(
        &self,
        _ctx: Context,
        _old: Option<Member>,
        _new: Option<Member>,
        event: GuildMemberUpdateEvent,
    ) {
        let _ = self.seen.send(Seen::MemberUpdate {
            user: event.user.id.get(),
            roles: event.roles.iter().map(|r| r.get()).collect(),
        });
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        let _ = self.seen.send(Seen::Resumed);
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let result = match &interaction {
            Interaction::Command(cmd) => Self::command(&ctx, cmd).await,
            Interaction::Component(click) => Self::component(&ctx, click).await,
            Interaction::Modal(submit) => Self::modal(&ctx, submit).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            let _ = self.seen.send(Seen::AnswerFailed(error_code(&e)));
        }
    }
}

/// Starts serenity against the fake with the test bot; returns the running client and what
/// the handler sees.
async fn start_bot(
    discord: &FakeDiscord,
    intents: GatewayIntents,
) -> (RunningClient, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = discord
        .client_builder(intents)
        .expect("client builder")
        .event_handler(Bot { seen: tx })
        .await
        .expect("serenity client");
    (RunningClient::spawn(client), rx)
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>, what: &str) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("handler channel open")
}

async fn fake() -> FakeDiscord {
    FakeDiscord::builder()
        .guild(shop())
        .heartbeat_interval(Duration::from_millis(500))
        .start()
        .await
        .expect("fake Discord starts")
}

#[test]
fn every_sample_payload_deserializes_into_serenity_types() {
    let samples = sample_payloads();
    assert!(samples.len() > 30, "only {} samples", samples.len());
    for sample in &samples {
        if let Err(e) = parse_with_serenity(sample.kind, &sample.value) {
            panic!("{}: {e}\n{}", sample.name, sample.value);
        }
    }
    // And the shapes come out as the right serenity variants, not just "something".
    let frame = |name: &str| {
        let sample = samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no sample {name}"));
        serde_json::from_value::<GatewayEvent>(sample.value.clone()).expect(name)
    };
    match frame("READY") {
        GatewayEvent::Dispatch(_, Event::Ready(e)) => {
            assert_eq!(e.ready.application.id.get(), 1000);
            assert_eq!(e.ready.guilds.len(), 1);
        }
        other => panic!("READY parsed as {other:?}"),
    }
    match frame("GUILD_CREATE (GUILDS)") {
        GatewayEvent::Dispatch(_, Event::GuildCreate(e)) => {
            assert_eq!(e.guild.roles.len(), 3, "@everyone + 2 roles");
            assert_eq!(
                e.guild.members.len(),
                1,
                "only the bot without GUILD_MEMBERS"
            );
        }
        other => panic!("GUILD_CREATE parsed as {other:?}"),
    }
    match frame("INTERACTION_CREATE slash command") {
        GatewayEvent::Dispatch(_, Event::InteractionCreate(e)) => {
            let cmd = e.interaction.command().expect("a command interaction");
            assert_eq!(cmd.data.name, "setup");
            assert_eq!(cmd.user.id.get(), 4000, "user copied from member");
        }
        other => panic!("slash command parsed as {other:?}"),
    }
    match frame("INTERACTION_CREATE role select") {
        GatewayEvent::Dispatch(_, Event::InteractionCreate(e)) => {
            let click = e.interaction.message_component().expect("a component");
            assert!(matches!(
                click.data.kind,
                ComponentInteractionDataKind::RoleSelect { .. }
            ));
            assert_eq!(click.message.components.len(), 3);
        }
        other => panic!("role select parsed as {other:?}"),
    }
    match frame("INTERACTION_CREATE modal submit") {
        GatewayEvent::Dispatch(_, Event::InteractionCreate(e)) => {
            let modal = e.interaction.modal_submit().expect("a modal submit");
            assert_eq!(modal.data.custom_id, "prices");
        }
        other => panic!("modal submit parsed as {other:?}"),
    }
}

#[test]
fn the_payload_check_catches_what_serenity_would_drop() {
    // A member without `deaf` is rejected by serenity; inside a dispatch it would vanish.
    let member = json!({ "user": { "id": "1", "username": "x" }, "roles": [], "mute": false,
                         "flags": 0 });
    assert!(parse_with_serenity(PayloadKind::Member, &member).is_err());
    let frame = json!({ "op": 0, "s": 1, "t": "GUILD_MEMBER_ADD",
                        "d": { "guild_id": "1", "user": { "id": "1" } } });
    let err = parse_with_serenity(PayloadKind::GatewayFrame, &frame).expect_err("dropped event");
    assert!(err.contains("GUILD_MEMBER_ADD"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
async fn serenity_connects_registers_a_command_and_answers_interactions() {
    let discord = fake().await;
    let (client, mut seen) = start_bot(&discord, GatewayIntents::GUILDS).await;

    match next_seen(&mut seen, "READY").await {
        Seen::Ready {
            application_id,
            guilds,
        } => {
            assert_eq!(application_id, 1000);
            assert_eq!(guilds, 1);
        }
        other => panic!("expected READY first, saw {other:?}"),
    }
    match next_seen(&mut seen, "GUILD_CREATE").await {
        Seen::GuildCreate { id, roles } => {
            assert_eq!(id, GUILD);
            assert_eq!(roles, 5, "@everyone + 4 roles");
        }
        other => panic!("expected GUILD_CREATE, saw {other:?}"),
    }
    let stats = discord.gateway_stats();
    assert_eq!(stats.identifies, 1);
    assert_eq!(
        stats.last_handshake_uri.as_deref(),
        Some("/gateway?v=10"),
        "serenity appends only ?v=10"
    );
    let identify = &discord.received_gateway_frames()[0];
    assert_eq!(identify["op"], 2);
    assert_eq!(identify["d"]["token"], "<redacted>");

    // Registration: the fake stores what serenity sent.
    let command = discord
        .wait_for_command(Some(GUILD), "setup", WAIT)
        .await
        .expect("/setup registered");
    assert_eq!(command["default_member_permissions"], "32");
    let put = discord
        .wait_for_request("PUT", "/applications/1000/guilds/2000/commands", WAIT)
        .await
        .expect("bulk overwrite");
    assert_eq!(put.status, Some(200));
    assert_eq!(
        put.operation_id.as_deref(),
        Some("bulk_set_guild_application_commands")
    );

    // Slash command → ephemeral message with components; the fake saw the callback.
    let reply = discord
        .run_slash_command(
            &SlashCommand::new(GUILD, BUYER, "setup").option("price", 5),
            WAIT,
        )
        .await
        .expect("the bot answers /setup");
    assert_eq!(reply.kind, ReplyKind::Message);
    assert_eq!(reply.content(), Some("Pick roles (price 5)"));
    assert!(reply.is_ephemeral());
    assert_eq!(reply.custom_ids(), ["setup:roles", "buy"]);
    let callback = discord
        .wait_for_request("POST", "/interactions/*/*/callback", WAIT)
        .await
        .expect("callback");
    assert_eq!(callback.status, Some(204));

    // Role select → the message is updated in place.
    let pick = discord
        .click_component(GUILD, BUYER, &reply, "setup:roles", &["3000"])
        .expect("role select");
    let updated = discord.await_reply(&pick, WAIT).await.expect("update");
    assert_eq!(updated.kind, ReplyKind::UpdateMessage);
    assert_eq!(updated.content(), Some("Selected 3000"));

    // Button → modal → submit → deferred reply edited with the role outcomes.
    let click = discord
        .click_component(GUILD, BUYER, &reply, "buy", &[])
        .expect("button");
    let modal = discord.await_reply(&click, WAIT).await.expect("modal");
    assert_eq!(modal.kind, ReplyKind::Modal);
    assert_eq!(modal.modal_id(), Some("prices"));
    let submit = discord
        .submit_modal(GUILD, BUYER, &modal, &[("price", "5.00")])
        .expect("submit");
    let replies = discord
        .await_replies(&submit, 2, WAIT)
        .await
        .expect("edit and follow-up");
    let (done, receipt) = (&replies[0], &replies[1]);
    assert_eq!(receipt.kind, ReplyKind::Followup);
    assert_eq!(receipt.content(), Some("Receipt sent"));
    assert!(receipt.is_ephemeral());
    assert_eq!(done.kind, ReplyKind::EditOriginal);
    assert!(done.is_ephemeral(), "the defer's ephemeral flag sticks");
    assert_eq!(
        done.content(),
        Some("price 5.00; supporter ok; admin Some(50013)")
    );
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("role granted in the model");
    assert_eq!(discord.member_roles(GUILD, BUYER), Some(vec![SUPPORTER]));
    let grant = discord
        .wait_for_request("PUT", "/guilds/2000/members/4000/roles/3000", WAIT)
        .await
        .expect("grant request");
    assert_eq!(grant.status, Some(204));
    assert_eq!(grant.audit_log_reason().as_deref(), Some("paid: $5 ✓"));

    // A second initial response is refused with 40060; an unknown token with 10062.
    let http = discord.http().expect("http");
    let again = http
        .create_interaction_response(
            click.id.into(),
            &click.token,
            &CreateInteractionResponse::Acknowledge,
            Vec::new(),
        )
        .await
        .expect_err("already acknowledged");
    assert_eq!(error_code(&again), Some(40060));
    let unknown = http
        .create_interaction_response(
            click.id.into(),
            "not-a-token",
            &CreateInteractionResponse::Acknowledge,
            Vec::new(),
        )
        .await
        .expect_err("unknown interaction");
    assert_eq!(error_code(&unknown), Some(10062));

    let requests = discord.requests();
    assert!(
        requests.iter().all(|r| r.operation_id.is_some()),
        "every request matched an operation of the spec: {requests:#?}"
    );
    // The cheap counter agrees with the log.
    assert_eq!(
        discord.count_requests("PUT", "/guilds/{guild_id}/members/{user_id}/roles/*"),
        requests
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/roles/"))
            .count()
    );
    assert!(discord.count_requests("PUT", "/guilds/2000/members/4000/roles/3000") >= 1);
    assert_eq!(
        discord.count_requests("PUT", "/guilds/2000/members/4000/roles/9"),
        0
    );
    assert_eq!(
        discord.count_requests("DELETE", "/guilds/*/members/*/roles/*"),
        0
    );
    discord.assert_no_schema_violations();
    discord.assert_payloads_parse();
    client.shutdown(WAIT).await.expect("serenity shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "a table of Discord's role errors, then the reads"
)]
async fn role_changes_follow_discords_rules_and_dispatch_member_updates() {
    let discord = FakeDiscord::builder()
        .guild(shop())
        .guild(
            GuildSpec::new(2100, "No perms")
                .role(RoleSpec::new(3100, "Low", 1, 0))
                .role(RoleSpec::new(3101, "Bot", 2, 0))
                .member(MemberSpec::new(BUYER, "buyer"))
                .bot_roles(&[3101]),
        )
        .start()
        .await
        .expect("fake");
    let intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_MEMBERS;
    let (client, mut seen) = start_bot(&discord, intents).await;
    discord.wait_for_ready(WAIT).await.expect("ready");
    let http = discord.http().expect("http");
    let (guild, buyer) = (GuildId::new(GUILD), UserId::new(BUYER));

    http.add_member_role(guild, buyer, RoleId::new(SUPPORTER), None)
        .await
        .expect("grant below the bot's role");
    assert_eq!(discord.member_roles(GUILD, BUYER), Some(vec![SUPPORTER]));
    loop {
        if let Seen::MemberUpdate { user, roles } =
            next_seen(&mut seen, "GUILD_MEMBER_UPDATE").await
        {
            assert_eq!((user, roles), (BUYER, vec![SUPPORTER]));
            break;
        }
    }

    let cases = [
        (
            GUILD,
            BUYER,
            ADMIN,
            403,
            50013,
            "role above the bot's top role",
        ),
        (
            GUILD,
            BUYER,
            PEER,
            403,
            50013,
            "level with the bot's top role",
        ),
        (
            GUILD,
            BUYER,
            BOT_ROLE,
            403,
            50013,
            "managed (the bot's own)",
        ),
        (2100, BUYER, 3100, 403, 50013, "no Manage Roles"),
        (GUILD, 4999, SUPPORTER, 404, 10007, "unknown member"),
        (GUILD, BUYER, 3999, 404, 10011, "unknown role"),
    ];
    for (g, u, r, status, code, why) in cases {
        let err = http
            .add_member_role(GuildId::new(g), UserId::new(u), RoleId::new(r), None)
            .await
            .expect_err(why);
        let serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) = &err else {
            panic!("{why}: {err:?}");
        };
        assert_eq!(
            (resp.status_code.as_u16(), resp.error.code),
            (status, code),
            "{why}"
        );
    }
    assert_eq!(discord.member_roles(GUILD, BUYER), Some(vec![SUPPORTER]));

    http.remove_member_role(guild, buyer, RoleId::new(SUPPORTER), None)
        .await
        .expect("revoke");
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, false, WAIT)
        .await
        .expect("revoked in the model");

    // Reads, global commands and DMs.
    let me = http.get_current_user().await.expect("users/@me");
    assert_eq!((me.id.get(), me.bot), (1000, true));
    let gateway = http.get_bot_gateway().await.expect("gateway/bot");
    assert_eq!(gateway.url, discord.gateway_url());
    let global = json!([{ "name": "buy", "description": "Buy a role" }]);
    let created = http
        .create_global_commands(&global)
        .await
        .expect("global commands");
    assert_eq!(created[0].name, "buy");
    assert_eq!(discord.commands(None).len(), 1);
    let member = http.get_member(guild, buyer).await.expect("get member");
    assert!(member.roles.is_empty());
    let members = http
        .get_guild_members(guild, Some(1000), None)
        .await
        .expect("list members");
    assert_eq!(members.len(), 2, "buyer and the bot");
    let roles = http.get_guild_roles(guild).await.expect("roles");
    assert_eq!(roles.len(), 5);
    let dm = buyer.create_dm_channel(&http).await.expect("open DM");
    dm.say(&http, "Thanks for buying!").await.expect("send DM");
    let sent = discord.wait_for_dm(BUYER, WAIT).await.expect("DM recorded");
    assert_eq!(sent.message["content"], "Thanks for buying!");

    // Joins and leaves are dispatched to a session subscribed to GUILD_MEMBERS.
    assert!(
        discord
            .member_join(GUILD, MemberSpec::new(4001, "newbie"))
            .expect("join")
            .is_some(),
        "delivered with GUILD_MEMBERS"
    );
    assert!(discord.member_leave(GUILD, 4001).expect("leave").is_some());

    discord.assert_no_schema_violations();
    discord.assert_payloads_parse();
    client.shutdown(WAIT).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serenity_resumes_after_a_dropped_socket_and_reidentifies_when_refused() {
    let discord = fake().await;
    let (client, mut seen) = start_bot(&discord, GatewayIntents::GUILDS).await;
    discord.wait_for_ready(WAIT).await.expect("ready");
    discord
        .wait_for_gateway("a heartbeat", WAIT, |s| s.heartbeats >= 1)
        .await
        .expect("serenity heartbeats and gets ACKs");

    // Drop the socket: serenity reconnects and RESUMEs; a dispatch pushed meanwhile is replayed.
    assert!(discord.drop_gateway());
    discord
        .wait_for_gateway("the socket to drop", WAIT, |s| !s.live)
        .await
        .expect("dropped");
    let joined = discord
        .join_guild(&GuildSpec::new(2200, "New"))
        .expect("join");
    assert!(joined.is_some());
    let stats = discord
        .wait_for_gateway("a RESUME", WAIT, |s| s.resumes == 1 && s.live)
        .await
        .expect("serenity resumed");
    assert_eq!(stats.identifies, 1, "resumed, not re-identified");
    assert_eq!(stats.connections, 2);
    let mut saw_new_guild = false;
    let mut saw_resumed = false;
    while !(saw_new_guild && saw_resumed) {
        match next_seen(&mut seen, "the replayed GUILD_CREATE and RESUMED").await {
            Seen::GuildCreate { id: 2200, .. } => saw_new_guild = true,
            Seen::Resumed => saw_resumed = true,
            _ => {}
        }
    }

    // Refuse the next RESUME: serenity gets INVALID_SESSION and identifies afresh.
    discord.set_resume_policy(ResumePolicy::Invalidate);
    assert!(discord.drop_gateway());
    let stats = discord
        .wait_for_gateway("a fresh IDENTIFY", WAIT, |s| s.identifies == 2 && s.live)
        .await
        .expect("serenity re-identified");
    assert!(stats.invalid_sessions >= 1);

    discord.assert_payloads_parse();
    client.shutdown(WAIT).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_4004_and_4014_end_the_client_with_an_error() {
    let discord = fake().await;
    let wrong_token = discord.http_with_token("not-the-token").expect("http");
    let client = ClientBuilder::new_with_http(wrong_token, GatewayIntents::GUILDS).await;
    let mut running = RunningClient::spawn(client.expect("client"));
    let ended = running
        .finished(WAIT)
        .await
        .expect("client.start() returns");
    assert!(
        matches!(
            ended,
            Err(serenity::Error::Gateway(
                serenity::gateway::GatewayError::InvalidAuthentication
            ))
        ),
        "{ended:?}"
    );
    assert_eq!(discord.gateway_stats().close_codes, [4004]);

    let strict = FakeDiscord::builder()
        .guild(shop())
        .privileged_intents(0)
        .start()
        .await
        .expect("fake");
    let client = strict
        .client_builder(GatewayIntents::GUILDS | GatewayIntents::GUILD_MEMBERS)
        .expect("builder")
        .await
        .expect("client");
    let mut running = RunningClient::spawn(client);
    let ended = running
        .finished(WAIT)
        .await
        .expect("client.start() returns");
    assert!(
        matches!(
            ended,
            Err(serenity::Error::Gateway(
                serenity::gateway::GatewayError::DisallowedGatewayIntents
            ))
        ),
        "{ended:?}"
    );
    assert_eq!(strict.gateway_stats().close_codes, [4014]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_body_is_rejected_by_discords_schema() {
    let discord = fake().await;
    let http = discord.http().expect("http");
    // A command name longer than 32 characters and a description that is not a string.
    let bad = json!([{ "name": "x".repeat(40), "description": 5 }]);
    let err = http
        .create_guild_commands(GuildId::new(GUILD), &bad)
        .await
        .expect_err("rejected");
    assert_eq!(error_code(&err), Some(50035), "{err:?}");
    let violations = discord.take_schema_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(
        v.operation_id.as_deref(),
        Some("bulk_set_guild_application_commands")
    );
    let errors = v.errors.join("\n");
    assert!(errors.contains("/0/name"), "{errors}");
    assert!(errors.contains("/0/description"), "{errors}");
    assert!(
        discord.commands(Some(GUILD)).is_empty(),
        "nothing registered"
    );

    // The interaction callback's schema is an `anyOf` of `$ref`s into the whole document.
    let bad_reply = json!({ "type": 4, "data": { "content": 5, "flags": "ephemeral" } });
    let err = http
        .create_interaction_response(1.into(), "fake-token-1", &bad_reply, Vec::new())
        .await
        .expect_err("rejected");
    assert_eq!(error_code(&err), Some(50035), "{err:?}");
    let violations = discord.take_schema_violations();
    assert_eq!(
        violations
            .iter()
            .map(|v| v.operation_id.as_deref())
            .collect::<Vec<_>>(),
        [Some("create_interaction_response")]
    );

    // A well-formed body passes.
    let good = json!([{ "name": "setup", "description": "Set up" }]);
    http.create_guild_commands(GuildId::new(GUILD), &good)
        .await
        .expect("accepted");
    discord.assert_no_schema_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_reach_serenity() {
    let discord = fake().await;
    let http = Arc::new(discord.http().expect("http"));
    let (guild, buyer, role) = (
        GuildId::new(GUILD),
        UserId::new(BUYER),
        RoleId::new(SUPPORTER),
    );
    let route = "/guilds/*/members/*/roles/*";

    discord.inject_fault(FaultRule::new("PUT", route, Fault::rate_limited(1.5)).once());
    let err = http
        .add_member_role(guild, buyer, role, None)
        .await
        .expect_err("429");
    let serenity::Error::Http(HttpError::UnsuccessfulRequest(resp)) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(resp.status_code.as_u16(), 429);
    let logged = discord.requests().pop().expect("logged");
    assert_eq!(logged.status, Some(429));
    assert_eq!(logged.response.as_ref().expect("body")["retry_after"], 1.5);
    assert_eq!(logged.header("authorization"), Some("Bot fake-bot-token"));

    discord.inject_fault(
        FaultRule::new(
            "PUT",
            route,
            Fault::error(500, 0, "500: Internal Server Error"),
        )
        .once(),
    );
    let err = http
        .add_member_role(guild, buyer, role, None)
        .await
        .expect_err("500");
    assert!(
        matches!(&err, serenity::Error::Http(HttpError::UnsuccessfulRequest(r))
        if r.status_code.as_u16() == 500)
    );

    discord.inject_fault(FaultRule::new("PUT", route, Fault::drop_connection()).once());
    let err = http
        .add_member_role(guild, buyer, role, None)
        .await
        .expect_err("dropped");
    assert!(
        matches!(&err, serenity::Error::Http(HttpError::Request(_))),
        "{err:?}"
    );
    assert_eq!(discord.requests().pop().expect("logged").status, None);

    discord.inject_fault(
        FaultRule::new("PUT", route, Fault::delay(Duration::from_millis(300))).once(),
    );
    let started = std::time::Instant::now();
    http.add_member_role(guild, buyer, role, None)
        .await
        .expect("delayed but fine");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(discord.member_roles(GUILD, BUYER), Some(vec![SUPPORTER]));
    discord.assert_payloads_parse();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_interaction_response_gets_10062() {
    let discord = FakeDiscord::builder()
        .guild(shop())
        .interaction_deadline(Duration::from_millis(200))
        .start()
        .await
        .expect("fake");
    let (client, mut seen) = start_bot(&discord, GatewayIntents::GUILDS).await;
    discord
        .wait_for_command(Some(GUILD), "setup", WAIT)
        .await
        .expect("registered");
    // Answer too late: hold the callback back longer than the deadline.
    discord.inject_fault(
        FaultRule::new(
            "POST",
            "/interactions/*/*/callback",
            Fault::delay(Duration::from_millis(400)),
        )
        .once(),
    );
    let cmd = discord
        .slash_command(&SlashCommand::new(GUILD, BUYER, "setup").option("price", 1))
        .expect("dispatched");
    let late = discord
        .wait_for_request("POST", "/interactions/*/*/callback", WAIT)
        .await
        .expect("callback");
    assert_eq!(late.status, Some(404));
    assert_eq!(late.response.expect("body")["code"], 10062);
    assert!(discord.replies(&cmd).is_empty());
    loop {
        if let Seen::AnswerFailed(code) = next_seen(&mut seen, "the bot's failed answer").await {
            assert_eq!(code, Some(10062), "serenity surfaces Discord's code");
            break;
        }
    }
    client.shutdown(WAIT).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_fake_accepts_and_never_answers_until_it_speaks_again() {
    let discord = FakeDiscord::builder()
        .guild(shop())
        .heartbeat_interval(Duration::from_millis(200))
        .silent()
        .start()
        .await
        .expect("fake");
    let http = discord.http().expect("http");
    // REST: read and logged, never answered.
    let hung = tokio::time::timeout(Duration::from_millis(300), http.get_current_user()).await;
    assert!(hung.is_err(), "a silent fake answered: {hung:?}");
    assert_eq!(discord.unanswered_requests("GET", "/users/@me"), 1);
    let logged = discord.requests().pop().expect("logged");
    assert!(logged.silenced && logged.status.is_none(), "{logged:?}");
    // Gateway: the TCP connection is accepted, the WebSocket upgrade never answered.
    let addr = discord
        .gateway_url()
        .trim_start_matches("ws://")
        .trim_end_matches("/gateway")
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("TCP accepted");
    let handshake = tokio::time::timeout(
        Duration::from_millis(300),
        tokio_tungstenite::client_async(discord.gateway_url(), tcp),
    )
    .await;
    assert!(handshake.is_err(), "the upgrade was answered");
    let stats = discord.gateway_stats();
    assert_eq!((stats.silent_connections, stats.connections), (1, 0));

    // Speaking again: new requests and connections are answered.
    discord.set_silent(false);
    let me = tokio::time::timeout(WAIT, http.get_current_user())
        .await
        .expect("answered")
        .expect("the bot user");
    assert_eq!(me.id.get(), discord.bot_user_id());
    let (client, _seen) = start_bot(&discord, GatewayIntents::GUILDS).await;
    discord.wait_for_ready(WAIT).await.expect("ready");

    // A live session that goes silent acknowledges no heartbeat: serenity gives it up and
    // reconnects into the silence.
    discord.set_gateway_silent(true);
    discord
        .wait_for_gateway("a reconnect into the silence", WAIT, |s| {
            s.silent_connections >= 2
        })
        .await
        .expect("serenity reconnected");
    assert_eq!(discord.gateway_stats().identifies, 1);
    drop(client);
}
