"""OpenTelemetry: the service joins the caller's trace, as the Rust agent service does.

- The caller's W3C trace context (`traceparent`, `tracestate` in the gRPC metadata) is
  extracted with `TraceContextTextMapPropagator`; the task runs in a SERVER span
  `agent.run_task` (attribute `catena.request_id`; `catena.run_id` for a durable run) with
  that parent (a new trace without one); `ResumeTask` and `Decide` in `agent.continue_task`.
- Each model call is a CLIENT span `chat {model}` with the GenAI semantic conventions:
  `gen_ai.operation.name = "chat"`, `gen_ai.provider.name`, `gen_ai.request.model`, and once
  known `gen_ai.response.model`, `gen_ai.response.finish_reasons`, `gen_ai.usage.input_tokens`,
  `gen_ai.usage.output_tokens`, `error.type`. Prompts and answers are never recorded.
- Each tool execution is an INTERNAL span `execute_tool {tool}` with
  `gen_ai.operation.name = "execute_tool"`, `gen_ai.tool.name`, `gen_ai.tool.call.id`, and
  `error.type` when it failed. (A call to a tool the task does not have runs nothing and has
  no span, as in Rust.)

Exporters, from the environment (none set: spans are not recorded at all):

- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): OTLP/gRPC in
  batches (`opentelemetry-exporter-otlp-proto-grpc`; its usual `OTEL_EXPORTER_OTLP_*` variables
  apply). Service name: `OTEL_SERVICE_NAME`, else `catena-python-agent`.
- `CATENA_PY_AGENT_SPAN_LOG=/path/spans.jsonl`: a TEST / DEBUG AID. Every finished span is
  appended to the file as one JSON line, synchronously as it ends:
  `{"name", "kind", "trace_id", "span_id", "parent_span_id", "status", "attributes", ...}`
  (ids as lowercase hex; `parent_span_id` is null for a root span). The integration tests read
  it; it is not meant for production (one unbuffered write per span).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("catena.python_agent")

SPAN_LOG_ENV = "CATENA_PY_AGENT_SPAN_LOG"
DEFAULT_SERVICE_NAME = "catena-python-agent"

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("catena.python_agent")


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON line (test / debug aid)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown

    @staticmethod
    def to_dict(span: ReadableSpan) -> dict[str, Any]:
        ctx = span.get_span_context()
        parent = span.parent
        return {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
            "parent_is_remote": bool(parent.is_remote) if parent is not None else None,
            "status": span.status.status_code.name,
            "start_time_unix_nano": span.start_time,
            "end_time_unix_nano": span.end_time,
            "attributes": {k: _jsonable(v) for k, v in (span.attributes or {}).items()},
        }

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(self.to_dict(s), separators=(",", ":")) + "\n" for s in spans)
        try:
            with self._lock:
                self._file.write(lines)
                self._file.flush()
        except (OSError, ValueError) as e:
            log.warning("cannot write spans to %s: %s", self.path, e)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def setup_tracing(environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Installs the global tracer provider with the exporters the environment asks for.

    Returns the provider (shut it down on exit to flush batched spans), or None when no
    exporter is configured: spans are then non-recording and cost next to nothing.
    """
    span_log = environ.get(SPAN_LOG_ENV, "").strip()
    otlp = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )
    if not span_log and not otlp:
        return None
    name = environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    if span_log:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(span_log)))
        log.info("spans are written to %s (%s, a test/debug aid)", span_log, SPAN_LOG_ENV)
    if otlp:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-grpc "
                "is not installed: spans are not exported"
            )
        else:
            # The exporter reads the endpoint, headers, TLS and timeout from OTEL_EXPORTER_OTLP_*.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            log.info("spans are exported over OTLP/gRPC to %s as service %s", otlp, name)
    trace.set_tracer_provider(provider)
    return provider


def parent_from_metadata(metadata: Sequence[tuple[str, Any]]) -> otel_context.Context:
    """The caller's context from the call's invocation metadata (`traceparent`, `tracestate`).

    gRPC metadata keys are lowercase; values that are not text (`-bin` keys) are skipped. An
    absent or malformed `traceparent` gives an empty context: the task starts a new trace.
    """
    carrier: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, str) and key.lower() in ("traceparent", "tracestate"):
            carrier[key.lower()] = value
    return _propagator.extract(carrier)


def start_run_task_span(
    parent: otel_context.Context, request_id: str, method: str = "RunTask", run_id: str = ""
) -> trace.Span:
    """The SERVER span of one served call; end it when the call ends. `agent.run_task` for
    `RunTask`, `agent.continue_task` for `ResumeTask` and `Decide` (as the Rust service names
    them); a durable run's id is the attribute `catena.run_id`."""
    attributes = {
        "catena.request_id": request_id,
        "rpc.system": "grpc",
        "rpc.service": "catena.agent.v1.AgentService",
        "rpc.method": method,
    }
    if run_id:
        attributes["catena.run_id"] = run_id
    return tracer.start_span(
        "agent.run_task" if method == "RunTask" else "agent.continue_task",
        context=parent,
        kind=SpanKind.SERVER,
        attributes=attributes,
    )


def set_error(span: trace.Span, error_type: str, description: str | None = None) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description))


@contextmanager
def attached(ctx: otel_context.Context | None) -> Iterator[None]:
    """Makes `ctx` current in this thread (the agent's worker thread does not inherit it)."""
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def model_identity(model: Any) -> tuple[str, str]:
    """(provider, model name) of a LangChain chat model, from its LangSmith parameters."""
    provider, name = "", ""
    try:
        params = model._get_ls_params()  # noqa: SLF001 - the documented hook for this
        provider = str(params.get("ls_provider") or "")
        name = str(params.get("ls_model_name") or "")
    except Exception:  # noqa: BLE001 - best effort
        pass
    return provider or type(model).__name__, name or "unknown"


@contextmanager
def chat_span(
    provider: str, model: str, not_failures: tuple[type[BaseException], ...] = ()
) -> Iterator[trace.Span]:
    """A CLIENT span `chat {model}` around one model call (GenAI semantic conventions).

    An exception marks it failed, with `error.type` = the exception's class name, unless it is
    one of `not_failures` (a cancelled task: the span just ends).
    """
    with tracer.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except not_failures:
            raise
        except Exception as e:
            set_error(span, type(e).__name__, str(e))
            raise


def record_chat_response(span: trace.Span, message: Any) -> None:
    """Usage, response model and finish reason of the model's (accumulated) reply."""
    usage = getattr(message, "usage_metadata", None) or {}
    if "input_tokens" in usage:
        span.set_attribute("gen_ai.usage.input_tokens", int(usage["input_tokens"]))
    if "output_tokens" in usage:
        span.set_attribute("gen_ai.usage.output_tokens", int(usage["output_tokens"]))
    meta = getattr(message, "response_metadata", None) or {}
    model = meta.get("model_name") or meta.get("model")
    if isinstance(model, str) and model:
        span.set_attribute("gen_ai.response.model", model)
    reason = meta.get("finish_reason") or meta.get("stop_reason")
    if isinstance(reason, str) and reason:
        span.set_attribute("gen_ai.response.finish_reasons", [reason])


@contextmanager
def tool_span(name: str, call_id: str) -> Iterator[trace.Span]:
    """An INTERNAL span `execute_tool {name}` around one tool execution."""
    with tracer.start_as_current_span(
        f"execute_tool {name}",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span
