#!/usr/bin/env bash
# Measures the release binary the way issue 7 asks: stripped size, start → healthy with a cold
# and a warm plugin cache, idle RSS with both plugins loaded, and RSS under webhook load.
#
#   cargo build --release --locked && bash scripts/measure.sh [path/to/docobo]
#
# Nothing leaves the machine: the bot is pointed at a closed local port (it retries in the
# background) and the load is signed Polar webhooks sent to 127.0.0.1 by a small Python client.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/docobo}
[ -x "$BIN" ] || { echo "no binary at $BIN: build it first (cargo build --release --locked)" >&2; exit 2; }
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^DOCOBO_' || true)

WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SECRET=polar_whs_measure_secret
export DOCOBO_DISCORD__TOKEN=measure DOCOBO_DISCORD__API_URL=http://127.0.0.1:9 \
    DOCOBO_SERVER__BIND=127.0.0.1 DOCOBO_SERVER__PORT=$PORT \
    DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE=0 \
    DOCOBO_DATABASE__PATH=$WORK/docobo.db DOCOBO_PLUGINS__DIR=$WORK/plugins \
    DOCOBO_PLUGINS__CACHE_DIR=$WORK/cache DOCOBO_SECRETS__KEY_PATH=$WORK/docobo.key \
    DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET=$SECRET DOCOBO_PROVIDERS__POLAR__ACCESS_TOKEN=x \
    DOCOBO_LOG__LEVEL=warn

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# Starts the server; sets PID, and ELAPSED to the milliseconds from exec to the first
# healthy /health.
start() {
    local t0 t1
    t0=$(date +%s%N)
    "$BIN" serve >"$WORK/server.log" 2>&1 &
    PID=$!
    until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
        sleep 0.005
    done
    t1=$(date +%s%N)
    ELAPSED=$(( (t1 - t0) / 1000000 ))
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }

echo "binary: $BIN ($(uname -m)), $(stat -c %s "$BIN") bytes ($(awk -v b="$(stat -c %s "$BIN")" 'BEGIN {printf "%.1f", b/1048576}') MiB)"
PID=
start; cold=$ELAPSED; stop
start; warm=$ELAPSED
sleep 2
echo "start → healthy: cold plugin cache ${cold} ms, warm cache ${warm} ms"
echo "idle RSS (both plugins loaded, 2 s after healthy): $(rss_kib "$PID") KiB"

python3 - "$PORT" "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time, threading, http.client
port, secret = int(sys.argv[1]), sys.argv[2].encode()
def send(n0, count):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for n in range(n0, n0 + count):
        now = time.time()
        body = json.dumps({"type": "subscription.active", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "data": {"id": f"sub-{n}", "status": "active", "cancel_at_period_end": False,
                     "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                     "current_period_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 30 * 86400)),
                     "product_id": "prod", "metadata": {"docobo_guild_id": "112233445566778899", "docobo_user_id": str(10**6 + n)}}}).encode()
        mid, ts = f"msg-{n}", str(int(now))
        sig = base64.b64encode(hmac.new(secret, f"{mid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
        conn.request("POST", "/webhooks/polar", body, {"webhook-id": mid, "webhook-timestamp": ts,
                     "webhook-signature": f"v1,{sig}", "content-type": "application/json"})
        r = conn.getresponse(); r.read()
        assert r.status < 500, r.status
threads = [threading.Thread(target=send, args=(i * 1000, 1000)) for i in range(8)]
t = time.time()
[th.start() for th in threads]; [th.join() for th in threads]
print(f"load: 8000 signed webhooks over 8 connections in {time.time() - t:.1f} s")
PY
echo "RSS after load: $(rss_kib "$PID") KiB, peak (VmHWM): $(hwm_kib "$PID") KiB"
stop
