-- The dashboard's members list: a guild's subscriptions, test purchases left out, newest
-- first, 50 at a time (src/web/data.rs, MEMBERS). With only `subscriptions_member
-- (guild_id, user_id)` SQLite read all of the guild's rows and sorted them by id for every
-- page: 120 ms at 100 000 subscriptions. An index ends in the rowid, so this one lists a
-- guild's rows in id order: a page walks it backwards from the cursor and stops after 51.
CREATE INDEX subscriptions_listing ON subscriptions (guild_id, test);
