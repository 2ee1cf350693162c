#!/usr/bin/env bash
# The README's run command on a machine whose pinned Rust toolchain is installed but lacks the
# wasm32-wasip2 target (rustup adds rust-toolchain.toml's targets only when it installs the
# toolchain). Run from a fresh clone of the current commit, with a stand-in rustup home:
#
#   1. real rustup, which cannot download (RUSTUP_DIST_SERVER is a closed local port, for the
#      whole script): the build runs `rustup target add wasm32-wasip2 --toolchain …` itself,
#      and when that fails it stops with the fix;
#   2. a `rustup` that installs the target from this machine's toolchain (what rustup would
#      download) and records how it was called: `cp docobo.example.toml docobo.toml` and the
#      README's `cargo run --release -- serve` build, install the target, and serve /health.
#
# The real toolchain is never changed: the stand-in is hard links to its files (a copy when
# the temporary folder is on another file system), and the files this script changes are
# replaced (a new file renamed over the link), never written through.
#
# RUSTUP_AUTO_INSTALL=0, the case the build handles: rustup 1.29 with auto-install on adds a
# toolchain file's missing targets itself when cargo starts (it is what the stand-in showed,
# failing to download them); with it off, as on this machine and many CI images, or an
# older rustup, it does not.
# Nothing reaches the internet; Discord is a closed local port (the bot retries, /health answers).
#
#   bash scripts/fresh-toolchain.sh [--debug] [--target-dir DIR]
#
# --debug builds without --release; --target-dir reuses a target directory's dependencies
# (the clone's own crates and plugins are still built: their paths differ).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PROFILE=(--release)
TARGET_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) PROFILE=() ;;
    --target-dir) TARGET_DIR=$(realpath "$2"); shift ;;
    *) echo "usage: $0 [--debug] [--target-dir DIR]" >&2; exit 64 ;;
  esac
  shift
done

fail() { echo "FAIL: $*" >&2; exit 1; }

REAL_RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
REAL_CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
REAL_RUSTUP=$REAL_CARGO_HOME/bin/rustup
[ -x "$REAL_RUSTUP" ] || fail "no rustup at $REAL_RUSTUP"
CHANNEL=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
HOST=$("$REAL_RUSTUP" run "$CHANNEL" rustc -vV | sed -n 's/^host: //p')
TOOLCHAIN=$CHANNEL-$HOST
# The toolchain's real folder: toolchains/<name> may be a symbolic link (to stable's, say).
REAL_TC=$(realpath "$REAL_RUSTUP_HOME/toolchains/$TOOLCHAIN")
[ -d "$REAL_TC/lib/rustlib/wasm32-wasip2/lib" ] ||
  fail "$REAL_TC has no wasm32-wasip2 target to stand in for the download"

WORK=$(realpath "$(mktemp -d /tmp/docobo-fresh.XXXXXX)")
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== a rustup home with $TOOLCHAIN but not wasm32-wasip2 ($WORK/rustup)"
TC=$WORK/rustup/toolchains/$TOOLCHAIN
mkdir -p "$TC"
cp "$REAL_RUSTUP_HOME/settings.toml" "$WORK/rustup/"
# The folder's contents, never a link to it: folders are made anew, files are hard links.
cp -al "$REAL_TC/." "$TC/" 2>/dev/null || { rm -rf "$TC"; mkdir -p "$TC"; cp -a "$REAL_TC/." "$TC/"; }
# Before removing anything: the stand-in's rustlib must be its own folder, inside $WORK.
RUSTLIB=$(realpath "$TC/lib/rustlib")
case "$RUSTLIB" in
  "$WORK"/*) ;;
  *) fail "the stand-in's rustlib is $RUSTLIB, not under $WORK: refusing to remove anything" ;;
esac
[ "$(stat -c %d:%i "$RUSTLIB")" != "$(stat -c %d:%i "$REAL_TC/lib/rustlib")" ] ||
  fail "the stand-in's rustlib is the real one: refusing to remove anything"
[ ! -L "$RUSTLIB/wasm32-wasip2" ] || fail "$RUSTLIB/wasm32-wasip2 is a link: refusing to remove it"
rm -rf "$RUSTLIB/wasm32-wasip2" "$RUSTLIB/manifest-rust-std-wasm32-wasip2"
# rustup's two lists of installed components: the installer's and its own.
grep -vx 'rust-std-wasm32-wasip2' "$RUSTLIB/components" > "$WORK/components"
mv -f "$WORK/components" "$RUSTLIB/components"
awk -v RS= -v ORS='\n\n' '!/target = "wasm32-wasip2"/' "$RUSTLIB/multirust-config.toml" > "$WORK/config"
mv -f "$WORK/config" "$RUSTLIB/multirust-config.toml"
[ -d "$REAL_TC/lib/rustlib/wasm32-wasip2/lib" ] || fail "the real toolchain lost its target"

# First on PATH (which rustup passes on unchanged to cargo and build scripts): rustup's
# proxies, then the `rustup` each step puts there. The cargo home stays the real one, for its
# registry (builds run --offline) at the paths a shared target directory's artifacts name.
mkdir -p "$WORK/bin"
for proxy in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
  ln -s "$REAL_RUSTUP" "$WORK/bin/$proxy"
done
export RUSTUP_HOME=$WORK/rustup
export PATH=$WORK/bin:$PATH
# Nothing is downloaded: a download rustup tries fails at once, on this machine.
export RUSTUP_DIST_SERVER=http://127.0.0.1:9
export RUSTUP_AUTO_INSTALL=0
unset RUSTUP_TOOLCHAIN RUSTC CARGO CARGO_TARGET_DIR RUSTFLAGS CARGO_BUILD_TARGET
if [ -n "$TARGET_DIR" ]; then export CARGO_TARGET_DIR=$TARGET_DIR; fi
installed() { "$REAL_RUSTUP" target list --installed --toolchain "$TOOLCHAIN"; }
installed | grep -qx wasm32-wasip2 && fail "the stand-in still lists wasm32-wasip2"
echo "installed targets: $(installed | tr '\n' ' ')"

echo "== a fresh clone of $(git -C "$REPO" rev-parse --short HEAD)"
git clone --quiet "$REPO" "$WORK/clone"
cd "$WORK/clone"
rustc --version
[ "$(rustup show active-toolchain | cut -d' ' -f1)" = "$TOOLCHAIN" ] || fail "not on $TOOLCHAIN"

echo "== 1. real rustup, offline: the build asks it for the target, and says what to do when it cannot"
ln -s "$REAL_RUSTUP" "$WORK/bin/rustup"
if cargo build --offline "${PROFILE[@]}" > "$WORK/offline.log" 2>&1; then
  fail "the build passed without the target"
fi
grep -q 'installing it: rustup target add wasm32-wasip2 --toolchain '"$TOOLCHAIN" "$WORK/offline.log" ||
  { tail -40 "$WORK/offline.log"; fail "the build did not try to install the target"; }
grep -q 'installing it failed' "$WORK/offline.log" || { tail -40 "$WORK/offline.log"; fail "no clear failure"; }
grep -q "Fix: run \`rustup target add wasm32-wasip2 --toolchain $TOOLCHAIN\` yourself" "$WORK/offline.log" ||
  { tail -40 "$WORK/offline.log"; fail "no fix in the failure"; }
grep -E 'error|Fix:|installing' "$WORK/offline.log" | grep -v '^ *Compiling' | head -8 | sed 's/^/  | /'
installed | grep -qx wasm32-wasip2 && fail "installed without a network?"

echo "== 2. a rustup that installs the target from this machine: the README's commands"
rm "$WORK/bin/rustup"
cat > "$WORK/bin/rustup" <<EOF
#!/bin/sh
# Stands in for rustup's download of one target; anything else goes to the real rustup.
if [ "\$1 \$2 \$3" = "target add wasm32-wasip2" ]; then
  echo "\$@" >> "$WORK/rustup-calls"
  [ "\$4" = --toolchain ] || exit 64
  tc=\$(realpath "\$RUSTUP_HOME/toolchains/\$5/lib/rustlib") || exit 70
  case "\$tc" in "$WORK"/*) ;; *) echo "refusing to install into \$tc" >&2; exit 70 ;; esac
  { cp -al "$REAL_TC/lib/rustlib/wasm32-wasip2" "$REAL_TC/lib/rustlib/manifest-rust-std-wasm32-wasip2" "\$tc/" 2>/dev/null ||
    cp -a "$REAL_TC/lib/rustlib/wasm32-wasip2" "$REAL_TC/lib/rustlib/manifest-rust-std-wasm32-wasip2" "\$tc/"; } &&
    { cat "\$tc/components"; echo rust-std-wasm32-wasip2; } > "\$tc/components.new" &&
    mv -f "\$tc/components.new" "\$tc/components" &&
    { cat "\$tc/multirust-config.toml"; printf '[[components]]\\npkg = "rust-std"\\ntarget = "wasm32-wasip2"\\nis_extension = false\\n'; } > "\$tc/config.new" &&
    mv -f "\$tc/config.new" "\$tc/multirust-config.toml" &&
    echo "info: installing component 'rust-std' for 'wasm32-wasip2' (from $REAL_TC)"
  exit
fi
exec "$REAL_RUSTUP" "\$@"
EOF
chmod +x "$WORK/bin/rustup"

cp docobo.example.toml docobo.toml
sed -i 's/^token = .*/token = "fresh-toolchain-not-a-token"/' docobo.toml
grep -q '^token = "fresh-toolchain-not-a-token"' docobo.toml || fail "no token = line in docobo.example.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "cargo run ${PROFILE[*]} -- serve (log: $WORK/serve.log)"
DOCOBO_SERVER__BIND=127.0.0.1 DOCOBO_SERVER__PORT=$PORT DOCOBO_DISCORD__API_URL=http://127.0.0.1:9 \
  cargo run --offline "${PROFILE[@]}" -- serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 7200); do
  grep -q '"msg":"listening"' "$WORK/serve.log" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { tail -40 "$WORK/serve.log"; fail "cargo run ended"; }
  sleep 1
done
grep -q '"msg":"listening"' "$WORK/serve.log" || fail "not listening after 2 hours"
grep 'wasm32-wasip2' "$WORK/serve.log" | grep -v '^ *Compiling' | sed 's/^/  | /'
HEALTH=$(curl -s "http://127.0.0.1:$PORT/health") || fail "no answer on /health"
echo "/health: $HEALTH"
echo "$HEALTH" | grep -q '"database":"ok"' || fail "the database is not ok"

[ "$(cat "$WORK/rustup-calls")" = "target add wasm32-wasip2 --toolchain $TOOLCHAIN" ] ||
  fail "rustup was asked: $(cat "$WORK/rustup-calls")"
installed | grep -qx wasm32-wasip2 || fail "wasm32-wasip2 is not installed in the stand-in"
grep -q 'installed the wasm32-wasip2 target into the' "$WORK/serve.log" || fail "the build did not say it installed the target"
[ -d "$REAL_TC/lib/rustlib/wasm32-wasip2/lib" ] || fail "the real toolchain lost its target"
echo "OK: a fresh clone on $TOOLCHAIN without wasm32-wasip2 ran the README's commands to a listening server"
