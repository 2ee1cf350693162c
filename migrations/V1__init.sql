-- Docobo's five tables. Append-only: never edit a released migration; add V2__… instead.
--
-- Snowflakes (guild, user, role, channel ids) are INTEGER (64-bit, never floats).
-- Times are INTEGER unix milliseconds. Money is INTEGER minor units + ISO currency.

CREATE TABLE guilds (
    guild_id        INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL DEFAULT '',
    owner_id        INTEGER,
    -- The provider plugin chosen in /setup, and its credentials (AEAD-encrypted).
    provider        TEXT,
    credentials     BLOB,
    -- Random, unguessable: the last segment of /webhooks/{provider}/{webhook_key}.
    webhook_key     TEXT    NOT NULL UNIQUE,
    log_channel_id  INTEGER,
    settings        TEXT    NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

CREATE TABLE members (
    guild_id    INTEGER NOT NULL REFERENCES guilds (guild_id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL,
    username    TEXT,
    -- 0 once Discord said the member left (10007); the sweep re-grants when they return.
    in_guild    INTEGER NOT NULL DEFAULT 1 CHECK (in_guild IN (0, 1)),
    created_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    PRIMARY KEY (guild_id, user_id)
) STRICT;

CREATE TABLE paid_roles (
    id           INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL REFERENCES guilds (guild_id) ON DELETE CASCADE,
    role_id      INTEGER NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    price_minor  INTEGER NOT NULL CHECK (price_minor >= 0),
    currency     TEXT    NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    -- monthly | yearly | one-time | days:N
    billing      TEXT    NOT NULL,
    -- The provider's product id, for providers that need one per role.
    product_ref  TEXT,
    -- 0 when removed from sale (existing subscriptions keep it).
    for_sale     INTEGER NOT NULL DEFAULT 1 CHECK (for_sale IN (0, 1)),
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (guild_id, role_id)
) STRICT;

CREATE INDEX paid_roles_product_ref ON paid_roles (product_ref) WHERE product_ref IS NOT NULL;

CREATE TABLE subscriptions (
    id                    INTEGER PRIMARY KEY,
    guild_id              INTEGER NOT NULL,
    user_id               INTEGER NOT NULL,
    paid_role_id          INTEGER NOT NULL REFERENCES paid_roles (id) ON DELETE RESTRICT,
    provider              TEXT    NOT NULL,
    -- The provider's subscription (or order) id; NULL for a bank-transfer checkout not yet paid.
    external_id           TEXT,
    status                TEXT    NOT NULL CHECK (status IN
                              ('pending', 'active', 'canceled', 'past_due', 'revoked', 'refunded', 'expired')),
    period_end            INTEGER,
    cancel_at_period_end  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    -- SePay: the code the bank transfer must carry.
    payment_code          TEXT    UNIQUE,
    -- Provider timestamp of the newest event applied (out-of-order protection).
    last_event_at         INTEGER,
    -- Role sync: whether the role is on the member at Discord as far as Docobo knows,
    -- and the retry state of the reconciler.
    role_applied          INTEGER NOT NULL DEFAULT 0 CHECK (role_applied IN (0, 1)),
    sync_attempts         INTEGER NOT NULL DEFAULT 0,
    next_sync_at          INTEGER,
    last_sync_error       TEXT,
    created_at            INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at            INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    FOREIGN KEY (guild_id, user_id) REFERENCES members (guild_id, user_id) ON DELETE CASCADE,
    UNIQUE (provider, external_id)
) STRICT;

CREATE INDEX subscriptions_member ON subscriptions (guild_id, user_id);
CREATE INDEX subscriptions_paid_role ON subscriptions (paid_role_id);
CREATE INDEX subscriptions_status ON subscriptions (status);
-- The reconciler scans for work that is due.
CREATE INDEX subscriptions_sync_due ON subscriptions (next_sync_at) WHERE next_sync_at IS NOT NULL;
CREATE INDEX subscriptions_period_end ON subscriptions (period_end) WHERE period_end IS NOT NULL;

CREATE TABLE webhook_events (
    id                 INTEGER PRIMARY KEY,
    provider           TEXT    NOT NULL,
    external_event_id  TEXT    NOT NULL,
    guild_id           INTEGER REFERENCES guilds (guild_id) ON DELETE SET NULL,
    subscription_id    INTEGER REFERENCES subscriptions (id) ON DELETE SET NULL,
    event_type         TEXT    NOT NULL,
    -- The normalized event as JSON: ids, status, amounts; no personal data, never the raw body.
    event              TEXT    NOT NULL,
    received_at        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    -- applied | stale | ignored | refused | rejected
    outcome            TEXT    NOT NULL,
    detail             TEXT,
    UNIQUE (provider, external_event_id)
) STRICT;

CREATE INDEX webhook_events_guild ON webhook_events (guild_id);
CREATE INDEX webhook_events_subscription ON webhook_events (subscription_id);
