#!/usr/bin/env bash
# Proves that Docobo runs on a 64-bit Raspberry Pi (aarch64), without one: cross-builds the
# release binary for aarch64-unknown-linux-gnu, then runs it under qemu-user emulation:
# --version, check-config, and `serve` until /health reports the database and both built-in
# provider plugins (Cranelift compiles the plugins to aarch64 code, under emulation).
#
#   bash scripts/aarch64.sh               # install what is missing, build, run
#   bash scripts/aarch64.sh --skip-build  # reuse target/aarch64-unknown-linux-gnu/release/docobo
#
# Nothing leaves this machine: the bot is pointed at a closed local port instead of Discord
# (it keeps retrying in the background) and the server listens on 127.0.0.1 only.
# Exit 0 when every check passed; non-zero, with the server's log, when one failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
HEALTH_TIMEOUT=120   # seconds; emulated Cranelift compiling the two plugins is slow
SKIP_BUILD=0
for arg in "$@"; do
    case $arg in
        --skip-build) SKIP_BUILD=1 ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

step() { printf '\n==== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# Only this script's settings reach the binary: drop any DOCOBO_* from the caller's shell.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^DOCOBO_' || true)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

step "1. Tools (installed if missing)"
packages=()
command -v qemu-aarch64 >/dev/null || packages+=(qemu-user)
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || packages+=(libc6-arm64-cross)
command -v aarch64-linux-gnu-strip >/dev/null || packages+=(binutils-aarch64-linux-gnu)
command -v curl >/dev/null || packages+=(curl)
command -v file >/dev/null || packages+=(file)
if [ "$SKIP_BUILD" -eq 0 ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || packages+=(gcc-aarch64-linux-gnu)
    [ -e "$SYSROOT/include/stdio.h" ] || packages+=(libc6-dev-arm64-cross)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    echo "installing: ${packages[*]}"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
fi
QEMU=(qemu-aarch64 -L "$SYSROOT")
echo "qemu:  $(qemu-aarch64 --version | head -n 1)"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/docobo"
if [ "$SKIP_BUILD" -eq 0 ]; then
    step "2. Cross-build: cargo build --release --locked --target $TARGET"
    # The pinned toolchain (rust-toolchain.toml, with wasm32-wasip2 for the plugins) plus the
    # aarch64 standard library.
    rustup toolchain install
    rustup target add wasm32-wasip2 "$TARGET"
    echo "gcc:   $(aarch64-linux-gnu-gcc --version | head -n 1)"
    # The linker for the binary, and the C compiler for the SQLite that rusqlite bundles. The
    # provider plugins are wasm32-wasip2 components (build.rs), the same on every host.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    build_start=$SECONDS
    cargo build --release --locked --target "$TARGET"
    echo "built in $((SECONDS - build_start)) s"
else
    step "2. Cross-build skipped (--skip-build)"
fi
[ -x "$BIN" ] || fail "$BIN does not exist: run without --skip-build"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/docobo-aarch64.XXXXXX")
LOG="$WORK/serve.log"
SERVER=""
cleanup() {
    status=$?
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$SERVER" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$LOG" ]; then
        echo "---- server log ($LOG) ----" >&2
        tail -n 200 "$LOG" >&2
        echo "---- end of server log; files kept in $WORK ----" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

step "3. The binary"
file "$BIN"
aarch64-linux-gnu-strip -o "$WORK/docobo.stripped" "$BIN"
size=$(stat -c %s "$BIN")
stripped=$(stat -c %s "$WORK/docobo.stripped")
rm -f "$WORK/docobo.stripped"
awk -v a="$size" -v b="$stripped" 'BEGIN {
    printf "size:          %d bytes (%.1f MB)\nstripped size: %d bytes (%.1f MB)\n", a, a / 1e6, b, b / 1e6 }'

step "4. docobo --version (emulated aarch64)"
"${QEMU[@]}" "$BIN" --version || fail "--version"

step "5. docobo check-config --config docobo.example.toml (emulated)"
(cd "$WORK" && DOCOBO_DISCORD__TOKEN=x "${QEMU[@]}" "$BIN" check-config --config "$ROOT/docobo.example.toml") \
    || fail "check-config rejected docobo.example.toml"

step "6. docobo serve (emulated) until /health is ok, at most ${HEALTH_TIMEOUT} s"
# A free local port: a random one that nothing answers on.
port=""
for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[ -n "$port" ] || fail "no free port found"
# 127.0.0.1:9 is closed: the bot never reaches Discord and keeps retrying in the background.
RUN_ENV=(
    DOCOBO_DISCORD__TOKEN=x
    DOCOBO_DISCORD__API_URL=http://127.0.0.1:9
    DOCOBO_SERVER__BIND=127.0.0.1
    DOCOBO_SERVER__PORT="$port"
    DOCOBO_DATABASE__PATH="$WORK/data/docobo.db"
    DOCOBO_PLUGINS__DIR="$WORK/data/plugins"
    DOCOBO_PLUGINS__CACHE_DIR="$WORK/data/cache"
    DOCOBO_SECRETS__KEY_PATH="$WORK/data/docobo.key"
    DOCOBO_LOG__FORMAT=text
)
(cd "$WORK" && exec env "${RUN_ENV[@]}" "${QEMU[@]}" "$BIN" serve) >"$LOG" 2>&1 &
SERVER=$!
echo "server pid $SERVER on 127.0.0.1:$port (log: $LOG)"
start=$SECONDS
body=""
while :; do
    kill -0 "$SERVER" 2>/dev/null || fail "docobo serve exited before it was healthy"
    # No --fail: a 503 body still says what is wrong.
    body=$(curl -s --max-time 5 "http://127.0.0.1:$port/health" || true)
    if [ -n "$body" ]; then
        plugins_ok=0
        if grep -q '"plugins":\["polar","sepay"\]' <<<"$body" \
            || { grep -q '"polar"' <<<"$body" && grep -q '"sepay"' <<<"$body"; }; then
            plugins_ok=1
        fi
        if [ "$plugins_ok" -eq 1 ] && grep -q '"database":"ok"' <<<"$body"; then break; fi
    fi
    [ $((SECONDS - start)) -lt "$HEALTH_TIMEOUT" ] \
        || fail "/health not ok after ${HEALTH_TIMEOUT} s; last answer: ${body:-none}"
    sleep 1
done
elapsed=$((SECONDS - start))
echo "/health: $body"
echo "healthy ${elapsed} s after start (emulated aarch64)"

step "7. docobo health (emulated; the container's HEALTHCHECK)"
(cd "$WORK" && env "${RUN_ENV[@]}" "${QEMU[@]}" "$BIN" health) || fail "docobo health did not exit 0"

step "8. Stop the server (SIGTERM)"
kill -TERM "$SERVER"
for _ in $(seq 1 60); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$SERVER" 2>/dev/null; then
    fail "the server did not stop within 30 s of SIGTERM"
fi
wait "$SERVER" 2>/dev/null || true
SERVER=""

printf '\nOK: the aarch64 build runs under emulation (healthy in %d s; %d bytes stripped).\n' \
    "$elapsed" "$stripped"
