"""The Catena agent service in Python: serves catena.agent.v1 (and grpc.health.v1) with a
LangChain tool-calling loop. Start it with `bash scripts/python-agent.sh run [ADDR]`.

Environment:
- CATENA_PY_AGENT_SCRIPT=/path/to/script.json -- TEST FIXTURE mode: a scripted LangChain chat
  model (see catena_py_agent/models.py). Otherwise OPENAI_API_KEY with langchain-openai.
- CATENA_PY_AGENT_K -- documents one search returns at most (default 4; also --k).
- CATENA_AGENT_TOKEN -- a shared bearer token every RunTask call must carry (`authorization:
  Bearer ...`, what the gateway sends from the same variable). Without it the service refuses to
  listen on anything but a loopback address.
- CATENA_PY_AGENT_WORKERS -- tasks at once at most (default 16; also --workers); a call beyond
  it is refused with RESOURCE_EXHAUSTED.
- LOG_LEVEL -- logging level (default INFO). Logs go to stderr.
- OTEL_EXPORTER_OTLP_ENDPOINT -- export spans over OTLP/gRPC (OTEL_SERVICE_NAME, default
  catena-python-agent). Each task joins the caller's trace (traceparent in the metadata).
- CATENA_PY_AGENT_SPAN_LOG=/path/spans.jsonl -- TEST/DEBUG AID: every finished span as one JSON
  line (see catena_py_agent/telemetry.py).
- CATENA_PY_AGENT_CHECKPOINTS=postgres://user:password@host:port/db -- durable runs: every task
  is a LangGraph run checkpointed in that database (schema `catena_py_agent`, created if
  missing), which ResumeTask, Decide and GetTask serve (see catena_py_agent/durable.py).
- CATENA_APPROVAL_TOOLS -- comma-separated tool names whose every call waits for a person's
  decision (ApprovalRequired, then Decide); needs CATENA_PY_AGENT_CHECKPOINTS.
- CATENA_PY_AGENT_TEST_HTTP_ALLOW=127.0.0.1:PORT -- TEST FIXTURE, with CATENA_PY_AGENT_SCRIPT
  only: offers the tool `http_get`, limited to that loopback address (catena_py_agent/tools.py).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "generated"))
sys.path.insert(0, HERE)

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

from catena.agent.v1 import agent_pb2_grpc  # noqa: E402
from catena_py_agent.models import SCRIPT_ENV, model_from_env  # noqa: E402
from catena_py_agent.service import AgentService, BearerAuth  # noqa: E402
from catena_py_agent.telemetry import setup_tracing  # noqa: E402
from catena_py_agent.tools import HTTP_ALLOW_ENV, http_get_tool  # noqa: E402

CHECKPOINTS_ENV = "CATENA_PY_AGENT_CHECKPOINTS"
APPROVAL_ENV = "CATENA_APPROVAL_TOOLS"

SERVICE_NAME = "catena.agent.v1.AgentService"


def is_loopback(addr: str) -> bool:
    """Whether `addr` (HOST:PORT, [V6]:PORT) names a loopback address."""
    host = addr.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    """`url` without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in userinfo else url


def main() -> int:
    parser = argparse.ArgumentParser(description="The Catena agent service, in Python.")
    parser.add_argument("--addr", default=os.environ.get("CATENA_PY_AGENT_ADDR", "127.0.0.1:50052"))
    parser.add_argument("--k", type=int, default=int(os.environ.get("CATENA_PY_AGENT_K", "4")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("CATENA_PY_AGENT_WORKERS", "16")),
        help="concurrent tasks at most (beyond: RESOURCE_EXHAUSTED)",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("catena.python_agent")
    # Before anything slow: an open port without credentials is a configuration error.
    token = os.environ.get("CATENA_AGENT_TOKEN", "").strip()
    if not token and not is_loopback(args.addr):
        log.error(
            "refusing to serve on %s without credentials: set a bearer token "
            "(CATENA_AGENT_TOKEN) or listen on a loopback address",
            args.addr,
        )
        return 2

    checkpoints = os.environ.get(CHECKPOINTS_ENV, "").strip()
    approval = [t.strip() for t in os.environ.get(APPROVAL_ENV, "").split(",") if t.strip()]
    if approval and not checkpoints:
        log.error("tools that need approval need durable runs: set %s", CHECKPOINTS_ENV)
        return 2
    extra_tools = []
    http_allow = os.environ.get(HTTP_ALLOW_ENV, "").strip()
    if http_allow:
        if not os.environ.get(SCRIPT_ENV, "").strip():
            log.error("%s is a test fixture: it needs %s", HTTP_ALLOW_ENV, SCRIPT_ENV)
            return 2
        try:
            extra_tools.append(http_get_tool(http_allow))
        except ValueError as e:
            log.error("%s", e)
            return 2

    tracer_provider = setup_tracing()
    factory, which = model_from_env()
    log.info("chat model: %s", which)
    durable = None
    if checkpoints:
        # Imported only here: LangGraph and psycopg are not needed without checkpoints.
        from catena_py_agent.durable import DurableRuns

        try:
            durable = DurableRuns.connect(
                checkpoints,
                max_connections=args.workers + 4,
                model_factory=factory,
                retriever_k=max(1, args.k),
                approval=approval,
                extra_tools=extra_tools,
            )
        except Exception as e:  # noqa: BLE001 - any connection or setup failure
            log.error("cannot use the checkpoints at %s: %s", redact(checkpoints), e)
            return 1
        log.info(
            "durable runs: LangGraph checkpoints in PostgreSQL at %s; approval for: %s",
            redact(checkpoints), ", ".join(approval) or "no tool",
        )

    # Tasks at once are capped by the server: a call beyond --workers is RESOURCE_EXHAUSTED.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers + 2),
        interceptors=[BearerAuth(token)] if token else [],
        maximum_concurrent_rpcs=args.workers,
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(
        AgentService(
            factory, retriever_k=max(1, args.k), extra_tools=extra_tools, durable=durable
        ),
        server,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(args.addr)
    if port == 0:
        log.error("cannot listen on %s", args.addr)
        return 1
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = args.addr.rsplit(":", 1)[0]
    # The test harness reads this line to find the port (with --addr HOST:0).
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down: health is NOT_SERVING, draining running tasks")
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=10).wait()
    if durable is not None:
        durable.close()
    if tracer_provider is not None:
        tracer_provider.shutdown()  # flushes the batched spans
    return 0


if __name__ == "__main__":
    sys.exit(main())
