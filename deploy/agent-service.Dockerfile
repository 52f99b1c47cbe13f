# syntax=docker/dockerfile:1.17
#
# The Catena agent service (package and binary example-agent-service), gRPC catena.agent.v1 +
# grpc.health.v1 on port 50051, with the embedded default local models. Build context: the
# repository root.
#
#   docker build -f deploy/agent-service.Dockerfile -t catena/agent-service:dev .
#
# It refuses to listen on a non-loopback address without CATENA_AGENT_TOKEN (the bearer token the
# gateway sends): pass it at run time, it is never baked in.

FROM python:3.11.13-slim-bookworm AS models
WORKDIR /src
COPY scripts/models.sh scripts/models.sh
RUN CATENA_MODEL_DIR=/models bash scripts/models.sh fetch

# grpc_health_probe for the HEALTHCHECK, built from source at a pinned version: `go install`
# verifies the module against the Go checksum database.
FROM golang:1.25-bookworm AS probe
ENV CGO_ENABLED=0
RUN go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.40

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p example-agent-service --bin example-agent-service \
    && install -D -m 0755 target/release/example-agent-service /out/example-agent-service

FROM debian:12.11-slim AS runtime
# Versions are not pinned: Debian's archive keeps only the current bookworm(-security) build of
# each package, so an exact pin stops building at the next security update. The base image tag
# pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 catena \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin catena
COPY --from=models /models /opt/catena/models
COPY --from=probe /go/bin/grpc-health-probe /usr/local/bin/grpc_health_probe
COPY --from=build /out/example-agent-service /usr/local/bin/example-agent-service
ENV CATENA_AGENT_ADDR=0.0.0.0:50051 \
    CATENA_EMBED_MODEL=/opt/catena/models/all-MiniLM-L6-v2 \
    CATENA_CHAT_MODEL=/opt/catena/models/SmolLM2-135M-Instruct.Q4_1.gguf \
    RUST_LOG=info
USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["grpc_health_probe", "-addr=127.0.0.1:50051", "-service=catena.agent.v1.AgentService"]
ENTRYPOINT ["/usr/local/bin/example-agent-service"]
