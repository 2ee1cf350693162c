#!/usr/bin/env python3
"""Power cuts under load, on LazyFS, with the real binary (issue 16).

LazyFS (https://github.com/dsrhaslab/lazyfs) is a FUSE file system that keeps every write in
its own cache until it is fsynced, and drops what was not fsynced when told
(`lazyfs::clear-cache`): what a disk keeps when the power goes. This script mounts it, runs
`docobo serve` with its database there, posts signed Polar deliveries from several threads,
and at a random moment freezes Docobo (SIGSTOP), notes every delivery acknowledged so far,
cuts the power (clear-cache), kills Docobo, and opens what is left: every delivery
acknowledged before the cut must be there. It does so CUTS times for each
`database.synchronous` setting given.

It needs root (FUSE) and a built LazyFS; it is a measurement, not part of the test suite (CI
cannot fetch LazyFS). The in-suite equivalent is tests/it/powercut (a SQLite VFS shim).

    python3 scripts/powercut_lazyfs.py --lazyfs /path/to/lazyfs/build/lazyfs \
        --docobo target/release/docobo --cuts 5 full normal
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SECRET = b"polar_whs_powercut"
PORT = 3931


def delivery(n):
    """A signed operator-level Polar delivery (recorded as a webhook event once verified)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = json.dumps(
        {
            "type": "subscription.active",
            "timestamp": now,
            "data": {
                "id": f"sub-{n}",
                "status": "active",
                "cancel_at_period_end": False,
                "created_at": now,
                "modified_at": now,
                "current_period_end": "2099-01-01T00:00:00Z",
                "amount": 499,
                "currency": "usd",
                "product_id": "p",
                "customer_id": "c",
                "metadata": {"docobo_guild_id": "1234567890", "docobo_user_id": str(1000 + n)},
            },
        }
    ).encode()
    mid, ts = f"cut-{n}", str(int(time.time()))
    sig = base64.b64encode(
        hmac.new(SECRET, f"{mid}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    headers = {
        "webhook-id": mid,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + sig,
        "content-type": "application/json",
    }
    return mid, body, headers


class Load:
    def __init__(self, threads):
        self.acked, self.lock, self.stop, self.next = [], threading.Lock(), False, 0
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def work(self):
        while not self.stop:
            with self.lock:
                n, self.next = self.next, self.next + 1
            mid, body, headers = delivery(n)
            request = urllib.request.Request(
                f"http://127.0.0.1:{PORT}/webhooks/polar", data=body, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    if r.status < 300:
                        with self.lock:
                            self.acked.append(mid)
            except (urllib.error.URLError, OSError):
                time.sleep(0.01)

    def snapshot(self):
        with self.lock:
            return list(self.acked)

    def halt(self):
        self.stop = True
        for t in self.threads:
            t.join(timeout=10)


def wait_for(predicate, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def healthy():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def cut_once(args, synchronous, work):
    root, mnt = os.path.join(work, "root"), os.path.join(work, "mnt")
    os.makedirs(root)
    os.makedirs(mnt)
    fifo = os.path.join(work, "faults.fifo")
    config = os.path.join(work, "lazyfs.toml")
    with open(config, "w") as f:
        f.write(
            f'[faults]\nfifo_path="{fifo}"\n[cache]\napply_eviction=false\n'
            '[cache.simple]\ncustom_size="2gb"\nblocks_per_page=1\n'
            '[filesystem]\nlog_all_operations=false\nlogfile=""\n'
        )
    fs = subprocess.Popen(
        [args.lazyfs, mnt, "--config-path", config, "-o", "allow_other",
         "-o", "modules=subdir", "-o", f"subdir={root}", "-f"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: os.path.ismount(mnt) and os.path.exists(fifo), "LazyFS to mount")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DOCOBO_DISCORD__TOKEN": "powercut",
        "DOCOBO_DISCORD__API_URL": "http://127.0.0.1:9",
        "DOCOBO_SERVER__BIND": "127.0.0.1",
        "DOCOBO_SERVER__PORT": str(PORT),
        "DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE": "0",
        "DOCOBO_DATABASE__PATH": os.path.join(mnt, "docobo.db"),
        "DOCOBO_DATABASE__SYNCHRONOUS": synchronous,
        "DOCOBO_SECRETS__KEY_PATH": os.path.join(work, "docobo.key"),
        "DOCOBO_PLUGINS__DIR": os.path.join(work, "plugins"),
        "DOCOBO_PLUGINS__CACHE_DIR": args.cache,
        "DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET": SECRET.decode(),
        "DOCOBO_PROVIDERS__POLAR__ACCESS_TOKEN": "x",
        "DOCOBO_LOG__LEVEL": "error",
    }
    server = subprocess.Popen([args.docobo, "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(healthy, "docobo to serve")
    load = Load(args.threads)
    time.sleep(random.uniform(1.0, 3.0))
    server.send_signal(signal.SIGSTOP)  # nothing more reaches the disk from here
    acked = load.snapshot()
    with open(fifo, "w") as f:  # the power goes: every write not fsynced is lost
        f.write("lazyfs::clear-cache\n")
    time.sleep(0.5)
    server.kill()
    server.wait()
    load.halt()
    subprocess.run(["umount", "-l", mnt], check=False)
    fs.terminate()
    fs.wait(timeout=10)
    # The reboot: what the disk kept, opened by SQLite (WAL recovery) in a copy.
    copy = os.path.join(work, "after")
    os.makedirs(copy)
    for name in os.listdir(root):
        if name.startswith("docobo.db") and not name.endswith("-shm"):
            with open(os.path.join(root, name), "rb") as src, open(os.path.join(copy, name), "wb") as dst:
                dst.write(src.read())
    db = sqlite3.connect(os.path.join(copy, "docobo.db"))
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    present = {row[0] for row in db.execute("SELECT external_event_id FROM webhook_events")}
    lost = [m for m in acked if m not in present]
    return len(acked), len(lost), integrity


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lazyfs", required=True)
    parser.add_argument("--docobo", required=True)
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("settings", nargs="+", choices=["full", "normal"])
    args = parser.parse_args()
    args.docobo = os.path.abspath(args.docobo)
    with tempfile.TemporaryDirectory() as cache:
        args.cache = cache
        for synchronous in args.settings:
            totals = [0, 0]
            for cut in range(args.cuts):
                with tempfile.TemporaryDirectory() as work:
                    acked, lost, integrity = cut_once(args, synchronous, work)
                totals[0] += acked
                totals[1] += lost
                print(f"synchronous={synchronous} cut {cut + 1}: {acked} acknowledged before "
                      f"the cut, {lost} lost; integrity_check: {integrity}", flush=True)
            print(f"synchronous={synchronous}: {totals[1]} of {totals[0]} acknowledged "
                  f"deliveries lost over {args.cuts} cuts", flush=True)


if __name__ == "__main__":
    main()
