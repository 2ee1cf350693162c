-- Every role change at Discord in a guild retries that guild's failed role syncs, and the
-- sweep retries all of them: both look for subscriptions with a last_sync_error, which
-- without an index meant reading the whole table on the writer's connection (15 ms at
-- 300 000 subscriptions, scripts/scan_cost.py, with webhooks waiting behind it). The index holds only the failed
-- rows (normally none), so it costs an insert nothing but evaluating its WHERE.
CREATE INDEX subscriptions_sync_failed ON subscriptions (guild_id) WHERE last_sync_error IS NOT NULL;
