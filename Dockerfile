# syntax=docker/dockerfile:1
# Docobo container image: docker build -t docobo . && docker run -v docobo-data:/data -e DOCOBO_DISCORD__TOKEN=… -p 3000:3000 docobo
# Builds for the platform it runs on (amd64 or arm64).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# rust-toolchain.toml pins 1.95.0 and the wasm32-wasip2 target (the provider plugins).
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target add wasm32-wasip2
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked && cp target/release/docobo /usr/local/bin/docobo

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin docobo \
    && mkdir -p /data && chown docobo:docobo /data
COPY --from=build /usr/local/bin/docobo /usr/local/bin/docobo
COPY docobo.example.toml /etc/docobo/docobo.example.toml
ENV DOCOBO_DATABASE__PATH=/data/docobo.db \
    DOCOBO_SERVER__BIND=0.0.0.0 \
    DOCOBO_SERVER__PORT=3000 \
    DOCOBO_LOG__FORMAT=json
USER docobo
WORKDIR /data
VOLUME /data
EXPOSE 3000
# Configuration: environment variables (DOCOBO_<SECTION>__<KEY>, secrets via …_FILE), or a
# file mounted at /data/docobo.toml (read from the working directory) or named by DOCOBO_CONFIG.
ENTRYPOINT ["/usr/local/bin/docobo"]
CMD ["serve"]
