-- Two indexes no query uses, each one more B-tree to update on every webhook that creates a
-- subscription or records an event:
-- * subscriptions_status: the only query that filters on status also bounds period_end, and
--   uses subscriptions_period_end;
-- * webhook_events_guild: nothing looks events up by guild (deleting a guild, which Docobo
--   never does by itself, scans webhook_events once to clear the column).
-- The indexes on foreign keys whose parent rows cascade (webhook_events.subscription_id,
-- subscriptions.paid_role_id) stay: without them each cascaded delete would scan a table.
DROP INDEX subscriptions_status;
DROP INDEX webhook_events_guild;
