-- Credential scopes (issue 17). A delivery is verified with one guild's credentials (its
-- webhook URL) or with the operator's ([providers.<id>]); what it may find and deduplicate
-- is now keyed by that scope: 'operator', or the guild id in decimal. Before, event ids were
-- unique per provider across every guild, so one guild's owner (who holds the guild's own
-- SePay key, whose event ids are sequential transaction ids) could pre-claim another guild's
-- future ids and have its real payments dropped as duplicates; and a subscription id taken
-- in one guild blocked or was found by deliveries to another.
--
-- SQLite cannot change a table's UNIQUE constraint, so both tables are rebuilt. Renaming
-- first (foreign keys on, so references follow the rename) and dropping the old tables once
-- nothing points at them keeps every subscription id and every webhook_events.subscription_id.
--
-- Existing rows get the scope they must have come from: a subscription carrying a payment
-- code came from a /join checkout, made with the guild's own credentials; so did one whose
-- guild has its own credentials for that provider; any other came from the operator's. An
-- event takes its subscription's scope; one without a subscription takes its guild's when
-- that guild has its own credentials for the provider, else the operator's.

ALTER TABLE subscriptions RENAME TO subscriptions_v5;

CREATE TABLE subscriptions (
    id                    INTEGER PRIMARY KEY,
    guild_id              INTEGER NOT NULL,
    user_id               INTEGER NOT NULL,
    paid_role_id          INTEGER NOT NULL REFERENCES paid_roles (id) ON DELETE RESTRICT,
    provider              TEXT    NOT NULL,
    -- Whose credentials created it: 'operator' or the guild id. Only deliveries verified in
    -- the same scope find it by its provider id.
    scope                 TEXT    NOT NULL,
    external_id           TEXT,
    status                TEXT    NOT NULL CHECK (status IN
                              ('pending', 'active', 'canceled', 'past_due', 'revoked', 'refunded', 'expired')),
    period_end            INTEGER,
    cancel_at_period_end  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    payment_code          TEXT    UNIQUE,
    last_event_at         INTEGER,
    role_applied          INTEGER NOT NULL DEFAULT 0 CHECK (role_applied IN (0, 1)),
    sync_attempts         INTEGER NOT NULL DEFAULT 0,
    next_sync_at          INTEGER,
    last_sync_error       TEXT,
    created_at            INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at            INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    announced             TEXT,
    sync_version          INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (guild_id, user_id) REFERENCES members (guild_id, user_id) ON DELETE CASCADE,
    -- A guild-scoped subscription belongs to that guild.
    CHECK (scope = 'operator' OR scope = CAST(guild_id AS TEXT)),
    UNIQUE (provider, scope, external_id)
) STRICT;

INSERT INTO subscriptions
    (id, guild_id, user_id, paid_role_id, provider, scope, external_id, status, period_end,
     cancel_at_period_end, payment_code, last_event_at, role_applied, sync_attempts,
     next_sync_at, last_sync_error, created_at, updated_at, announced, sync_version)
SELECT s.id, s.guild_id, s.user_id, s.paid_role_id, s.provider,
       CASE WHEN s.payment_code IS NOT NULL
                 OR EXISTS (SELECT 1 FROM guilds g WHERE g.guild_id = s.guild_id
                            AND g.provider = s.provider AND g.credentials IS NOT NULL)
            THEN CAST(s.guild_id AS TEXT) ELSE 'operator' END,
       s.external_id, s.status, s.period_end, s.cancel_at_period_end, s.payment_code,
       s.last_event_at, s.role_applied, s.sync_attempts, s.next_sync_at, s.last_sync_error,
       s.created_at, s.updated_at, s.announced, s.sync_version
FROM subscriptions_v5 s;

ALTER TABLE webhook_events RENAME TO webhook_events_v5;

CREATE TABLE webhook_events (
    id                 INTEGER PRIMARY KEY,
    provider           TEXT    NOT NULL,
    -- Whose credentials verified it: 'operator' or the guild id. Event ids are unique per
    -- (provider, scope): a repeat in the same scope is a duplicate, the same id in another
    -- scope is another event.
    scope              TEXT    NOT NULL,
    external_event_id  TEXT    NOT NULL,
    guild_id           INTEGER REFERENCES guilds (guild_id) ON DELETE SET NULL,
    subscription_id    INTEGER REFERENCES subscriptions (id) ON DELETE SET NULL,
    event_type         TEXT    NOT NULL,
    event              TEXT    NOT NULL,
    received_at        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    outcome            TEXT    NOT NULL,
    detail             TEXT,
    UNIQUE (provider, scope, external_event_id)
) STRICT;

INSERT INTO webhook_events
    (id, provider, scope, external_event_id, guild_id, subscription_id, event_type, event,
     received_at, outcome, detail)
SELECT e.id, e.provider,
       coalesce(
           (SELECT s.scope FROM subscriptions s WHERE s.id = e.subscription_id),
           CASE WHEN EXISTS (SELECT 1 FROM guilds g WHERE g.guild_id = e.guild_id
                             AND g.provider = e.provider AND g.credentials IS NOT NULL)
                THEN CAST(e.guild_id AS TEXT) END,
           'operator'),
       e.external_event_id, e.guild_id, e.subscription_id, e.event_type, e.event,
       e.received_at, e.outcome, e.detail
FROM webhook_events_v5 e;

DROP TABLE webhook_events_v5;
DROP TABLE subscriptions_v5;

CREATE INDEX subscriptions_member ON subscriptions (guild_id, user_id);
CREATE INDEX subscriptions_paid_role ON subscriptions (paid_role_id);
CREATE INDEX subscriptions_sync_due ON subscriptions (next_sync_at) WHERE next_sync_at IS NOT NULL;
CREATE INDEX subscriptions_period_end ON subscriptions (period_end) WHERE period_end IS NOT NULL;
CREATE INDEX subscriptions_sync_failed ON subscriptions (guild_id) WHERE last_sync_error IS NOT NULL;
CREATE INDEX webhook_events_subscription ON webhook_events (subscription_id);

-- When the bot left the guild (or was removed from it): its poll, sweep and role syncs stop
-- and its data is kept; NULL while the bot is in it. Re-adding the bot clears it.
ALTER TABLE guilds ADD COLUMN left_at INTEGER;
-- Role sync and the sweep skip left guilds: finding them reads only their rows.
CREATE INDEX guilds_left ON guilds (guild_id) WHERE left_at IS NOT NULL;
