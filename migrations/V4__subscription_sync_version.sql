-- Bumped by every write that makes a subscription due for role sync (a new state, a member
-- seen at Discord, the sweep). A sync reschedules only the rows whose version it read, so
-- a change that lands while its call to Discord is in flight keeps the row due.
ALTER TABLE subscriptions ADD COLUMN sync_version INTEGER NOT NULL DEFAULT 0;
