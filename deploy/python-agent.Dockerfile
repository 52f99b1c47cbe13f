# syntax=docker/dockerfile:1.17
#
# The Catena agent service in Python (examples/python-agent): gRPC catena.agent.v1 +
# grpc.health.v1 on port 50052. Build context: the repository root.
#
#   docker build -f deploy/python-agent.Dockerfile -t catena/python-agent:dev .
#
# The gRPC stubs are generated here from agents/proto (the same contract the Rust crates compile),
# as scripts/python-agent.sh does. The service needs OPENAI_API_KEY at run time (langchain-openai is
# installed from deploy/python-agent.requirements.txt) and refuses to listen on a non-loopback
# address without CATENA_AGENT_TOKEN; neither is baked in.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY examples/python-agent/requirements.txt requirements.txt
COPY deploy/python-agent.requirements.txt requirements-deploy.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt -r requirements-deploy.txt
COPY agents/proto /proto
RUN mkdir generated \
    && /opt/venv/bin/python -m grpc_tools.protoc -I /proto \
        --python_out=generated --pyi_out=generated --grpc_python_out=generated \
        catena/agent/v1/agent.proto \
    && /opt/venv/bin/pip uninstall --yes grpcio-tools
COPY examples/python-agent/server.py server.py
COPY examples/python-agent/catena_py_agent catena_py_agent

FROM python:3.11.13-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 catena \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin catena
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CATENA_PY_AGENT_ADDR=0.0.0.0:50052
WORKDIR /app
USER 10001:10001
EXPOSE 50052
# grpc.health.v1 Check of the agent service through grpcio-health-checking (in the venv).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:50052')).Check(h.HealthCheckRequest(service='catena.agent.v1.AgentService'), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["python", "/app/server.py"]
