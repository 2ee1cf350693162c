# syntax=docker/dockerfile:1
#
# Docobo's container image: one binary on Debian slim, running as a non-root user, with its
# state (database, secrets key, plugins, compiled-plugin cache) in the /data volume.
#
#   docker build -t docobo .
#   docker run -d --name docobo -p 3000:3000 -v docobo-data:/data \
#     -e DOCOBO_DISCORD__TOKEN=… docobo
#
# Configuration, either or both (environment variables win over the file):
#   * environment variables DOCOBO_<SECTION>__<KEY>, e.g. -e DOCOBO_SERVER__PUBLIC_URL=https://…;
#     a secret can come from a file: -e DOCOBO_DISCORD__TOKEN_FILE=/run/secrets/discord_token
#   * a mounted file: -v ./docobo.toml:/config/docobo.toml:ro -e DOCOBO_CONFIG=/config/docobo.toml
#     (or `docker run … docobo --config /config/docobo.toml serve`; prefer DOCOBO_CONFIG: the
#     HEALTHCHECK's `docobo health` reads the port from the same configuration and does not
#     see command-line arguments). The ENV defaults below are environment variables, so they
#     win over the file's database/plugins/secrets paths and server bind/port: change those
#     with -e, not in the file.
#
# Both platforms build from this one file:
#   docker buildx build --platform linux/amd64,linux/arm64 -t docobo .
# Each platform builds natively: on an amd64 machine the arm64 image builds under QEMU
# emulation, which works but takes far longer (an hour or more) than cross-compiling, i.e.
# a builder stage on $BUILDPLATFORM running `cargo build --target aarch64-unknown-linux-gnu`
# with gcc-aarch64-linux-gnu as the linker (scripts/aarch64.sh shows the commands).

# ---- builder ----------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
# The image already has gcc and libc6-dev (the SQLite that rusqlite bundles is C). TLS is
# rustls (pure Rust + ring), so neither OpenSSL nor pkg-config is needed.
WORKDIR /src
# rust-toolchain.toml pins the exact toolchain and adds the wasm32-wasip2 target that build.rs
# builds the provider plugins for (they are embedded in the binary). Installed in its own layer
# so that a source change does not download the toolchain again.
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add wasm32-wasip2
COPY . .
# The cache mounts only speed up rebuilds (BuildKit). The target cache gets one id per platform,
# and sharing=locked keeps a concurrent amd64 and arm64 build from writing it at the same
# time; the binary is copied out of it within the same step.
ARG TARGETPLATFORM
RUN --mount=type=cache,id=docobo-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=docobo-target-${TARGETPLATFORM},target=/src/target,sharing=locked \
    cargo build --release --locked \
    && install -m 0755 target/release/docobo /usr/local/bin/docobo \
    && docobo --version

# ---- runtime ----------------------------------------------------------------------------------
# Same Debian release as the builder, so the binary's glibc requirement is met.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin docobo \
    && mkdir -p /data \
    && chown docobo:docobo /data \
    && chmod 0700 /data
COPY --from=build /usr/local/bin/docobo /usr/local/bin/docobo
# Every setting with its default, for reference:
#   docker run --rm --entrypoint cat docobo /etc/docobo/docobo.example.toml
COPY docobo.example.toml /etc/docobo/docobo.example.toml
ENV DOCOBO_DATABASE__PATH=/data/docobo.db \
    DOCOBO_PLUGINS__DIR=/data/plugins \
    DOCOBO_PLUGINS__CACHE_DIR=/data/cache \
    DOCOBO_SECRETS__KEY_PATH=/data/docobo.key \
    DOCOBO_SERVER__BIND=0.0.0.0 \
    DOCOBO_SERVER__PORT=3000
USER 10001:10001
# (that is the `docobo` user; numeric so that Kubernetes' runAsNonRoot can check it)
WORKDIR /data
# The database, the credential key (docobo.key: back it up, see the README), extra plugins
# (/data/plugins/*.wasm) and the compiled-plugin cache.
VOLUME /data
EXPOSE 3000
# `docobo health` asks http://127.0.0.1:$DOCOBO_SERVER__PORT/health (same configuration as
# serve) and exits 0 when healthy. The start period covers compiling the plugins on first start
# (seconds on a Raspberry Pi; later starts load them from /data/cache).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["docobo", "health"]
ENTRYPOINT ["docobo"]
CMD ["serve"]
