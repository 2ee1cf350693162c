#!/usr/bin/env python3
"""Times the role-sync worker's two table-wide statements at scale, before and after session 7.

Builds the real schema (migrations/*.sql) in a temporary file with N live subscriptions
(default 300 000, two of them with a failed sync) and times, as SQLite runs them:
- when the next sync is due: `min(next_sync_at)` without and with `IS NOT NULL`;
- retrying failed syncs (per guild and all), without and with V5's partial index.
Uses Python's bundled SQLite, not the binary's: a measurement of the statements' shape.

    python3 scripts/scan_cost.py [N]
"""
import glob
import os
import sqlite3
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = sorted(glob.glob(os.path.join(HERE, "..", "migrations", "V*.sql")),
                    key=lambda p: int(os.path.basename(p)[1:].split("__")[0]))
NEXT_DUE_BEFORE = "SELECT min(next_sync_at) FROM subscriptions"
NEXT_DUE_AFTER = NEXT_DUE_BEFORE + " WHERE next_sync_at IS NOT NULL"
MARK_FAILED_DUE = """UPDATE subscriptions SET next_sync_at = ?2, sync_version = sync_version + 1
     WHERE last_sync_error IS NOT NULL AND (?1 IS NULL OR guild_id = ?1)
       AND (next_sync_at IS NULL OR next_sync_at > ?2)"""


def ms(conn, sql, params=(), runs=20):
    """Mean milliseconds per run; writes are rolled back after each run."""
    started = time.perf_counter()
    for _ in range(runs):
        conn.execute("BEGIN")
        conn.execute(sql, params).fetchall()
        conn.execute("ROLLBACK")
    return (time.perf_counter() - started) / runs * 1e3


with tempfile.TemporaryDirectory() as tmp:
    conn = sqlite3.connect(os.path.join(tmp, "scan.db"), isolation_level=None)
    # The schema as V5 found it (V6 rebuilt the table with V5's index in it).
    for path in MIGRATIONS:
        if int(os.path.basename(path)[1:].split("__")[0]) < 5:
            conn.executescript(open(path).read())
    conn.execute("BEGIN")
    # Timestamps given: the schema's defaults use unixepoch('subsec') (SQLite >= 3.42).
    conn.execute("INSERT INTO guilds (guild_id, webhook_key, created_at, updated_at)"
                 " VALUES (1, 'k', 0, 0)")
    conn.execute("INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing,"
                 " created_at, updated_at) VALUES (1, 1, 10, 499, 'USD', 'monthly', 0, 0)")
    conn.executemany("INSERT INTO members (guild_id, user_id, created_at, updated_at)"
                     " VALUES (1, ?, 0, 0)", ((i,) for i in range(1, N + 1)))
    conn.executemany(
        "INSERT INTO subscriptions (guild_id, user_id, paid_role_id, provider, external_id,"
        " status, period_end, next_sync_at, last_sync_error, created_at, updated_at)"
        " VALUES (1, ?1, 1, 'polar', 'sub-' || ?1, 'active', 4000000000000,"
        " 5000000000000 - ?1, CASE WHEN ?1 IN (7, 1500) THEN 'Missing Permissions' END, 0, 0)",
        ((i,) for i in range(1, N + 1)))
    conn.execute("COMMIT")
    print(f"SQLite {sqlite3.sqlite_version}, {N} subscriptions")
    print(f"next due, min() alone:         {ms(conn, NEXT_DUE_BEFORE):8.3f} ms")
    print(f"next due, WHERE IS NOT NULL:   {ms(conn, NEXT_DUE_AFTER):8.3f} ms")
    before = (ms(conn, MARK_FAILED_DUE, (1, 1)), ms(conn, MARK_FAILED_DUE, (None, 1)))
    conn.executescript(open(next(p for p in MIGRATIONS if "V5__" in p)).read())
    after = (ms(conn, MARK_FAILED_DUE, (1, 1)), ms(conn, MARK_FAILED_DUE, (None, 1)))
    print(f"retry failed syncs, guild / all, without V5: {before[0]:8.3f} / {before[1]:8.3f} ms")
    print(f"retry failed syncs, guild / all, with V5:    {after[0]:8.3f} / {after[1]:8.3f} ms")
