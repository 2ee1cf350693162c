#!/usr/bin/env bash
# The Dockerfile's steps, outside a container (no Docker daemon needed): the builder stage's
# commands, then the runtime stage's expectations, checked with the built binary.
#   bash scripts/docker-steps.sh [--skip-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n==== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^DOCOBO_' || true)

if [ "${1:-}" != "--skip-build" ]; then
    step "builder: rustup toolchain install (rust-toolchain.toml) && cargo build --release --locked"
    rustup toolchain install
    rustup target add wasm32-wasip2
    cargo build --release --locked
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/docobo"
"$BIN" --version || fail "--version"

step "runtime: COPY --from=build /usr/local/bin/docobo, ENV from the Dockerfile, /data owned by uid 10001"
grep -q 'COPY --from=build /usr/local/bin/docobo /usr/local/bin/docobo' Dockerfile || fail "Dockerfile: binary path"
grep -q '"docobo", "health"' Dockerfile || fail "Dockerfile: HEALTHCHECK docobo health"
# A stand-in root: /usr/local/bin/docobo and /data under a temp dir.
FAKE=$(mktemp -d "${TMPDIR:-/tmp}/docobo-image.XXXXXX")
SERVER=""
trap '[ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$FAKE"' EXIT
chmod 755 "$FAKE"
install -D -m 0755 "$BIN" "$FAKE/usr/local/bin/docobo"
mkdir -p "$FAKE/data"
# The image's DOCOBO_* defaults, with /data moved under the stand-in root.
mapfile -t IMAGE_ENV < <(grep -v '^ *#' Dockerfile | grep -oE 'DOCOBO_[A-Z_]+=[^ \\]+' | sed "s#=/data#=$FAKE/data#")
printf '  %s\n' "${IMAGE_ENV[@]}"
image_port=$(grep -oE 'DOCOBO_SERVER__PORT=[0-9]+' Dockerfile | cut -d= -f2)
grep -q "^EXPOSE $image_port\$" Dockerfile || fail "Dockerfile: EXPOSE and DOCOBO_SERVER__PORT disagree"
# Here the server gets a free port instead of $image_port (something may use that one).
port=$((20000 + RANDOM % 40000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((20000 + RANDOM % 40000)); done
# As root, run as uid 10001 (the image's `docobo` user) to prove it can write /data; else as
# this user, which owns the stand-in /data just like `docobo` owns the image's.
AS=()
if [ "$(id -u)" -eq 0 ]; then
    chown -R 10001:10001 "$FAKE/data"
    AS=(setpriv --reuid 10001 --regid 10001 --clear-groups)
fi
RUN=(env "${IMAGE_ENV[@]}" DOCOBO_DISCORD__TOKEN=x DOCOBO_DISCORD__API_URL=http://127.0.0.1:9
    DOCOBO_SERVER__BIND=127.0.0.1 DOCOBO_SERVER__PORT="$port" "${AS[@]}" "$FAKE/usr/local/bin/docobo")
(cd "$FAKE/data" && "${RUN[@]}" check-config) || fail "check-config with the image's environment"
(cd "$FAKE/data" && exec "${RUN[@]}" serve) >"$FAKE/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 60); do
    if (cd "$FAKE/data" && "${RUN[@]}" health >/dev/null 2>&1); then break; fi
    kill -0 "$SERVER" 2>/dev/null || { cat "$FAKE/serve.log"; fail "serve exited"; }
    sleep 1
done
(cd "$FAKE/data" && "${RUN[@]}" health) || { cat "$FAKE/serve.log"; fail "HEALTHCHECK (docobo health) not healthy"; }
kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=""
ls -ln "$FAKE/data"
for f in docobo.db docobo.key cache; do
    [ -e "$FAKE/data/$f" ] || fail "/data/$f was not created"
done
echo "OK: the builder's commands build, and the runtime stage's user can write /data and passes its HEALTHCHECK"
