"""The gRPC side: `catena.agent.v1.AgentService` over the agent loop, and health.

Behaviour follows the contract (agents/proto/catena/agent/v1/agent.proto) and the Rust adapter
(catena_agents::grpc::AgentGrpcService):

- validation before any event: blank task, bad history role, blank or unknown allowed tool,
  negative max_duration -> INVALID_ARGUMENT; over a size limit -> RESOURCE_EXHAUSTED;
- the deadline is the earliest of the gRPC deadline (`context.time_remaining()`),
  `limits.max_duration` and the service cap; when it passes the agent is stopped, an
  `ErrorEvent` DEADLINE_EXCEEDED is sent if the client still listens, and the call closes with
  DEADLINE_EXCEEDED;
- when the client cancels or goes away (`context.is_active()`, `add_callback`) the agent stops;
- a failure after the start is a final `ErrorEvent`, then the matching non-OK status;
- server-side caps whatever the request asks: steps (MAX_STEPS), model tokens (MAX_TOKENS), and
  tasks at once (the server's `maximum_concurrent_rpcs`, server.py); caller-sent system messages
  in `history` are dropped (the instructions are the service's own);
- with a token configured (`CATENA_AGENT_TOKEN`), `BearerAuth` refuses a call without
  `authorization: Bearer <token>` with UNAUTHENTICATED; health stays open;
- `traceparent` / `tracestate` from the invocation metadata are logged with the task, and the
  task joins that trace: it runs in a SERVER span `agent.run_task` whose parent is the
  caller's span (telemetry.py), with the model and tool spans below it;
- every event carries the run id (`RunTaskRequest.run_id`, checked as the contract says, or
  one the service makes up);
- durable runs (durable.py) when the service has checkpoints: `RunTask` runs the task as a
  durable run, and `ResumeTask`, `Decide` and `GetTask` serve it; without checkpoints those
  three answer FAILED_PRECONDITION.
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import time
import uuid
from typing import TYPE_CHECKING, Iterator, Sequence

import grpc
from langchain_core.tools import BaseTool
from opentelemetry import trace

from catena.agent.v1 import agent_pb2, agent_pb2_grpc

from . import telemetry
from .agent import run_agent
from .calls import POLL_S, STATUS, CallSpan, Rejected, check_run_id, deadline, traced
from .models import ModelFactory
from .task import TaskRecord, initial_messages, toolbox
from .tools import SEARCH_DOCUMENTS, ContextDocument, calculator

if TYPE_CHECKING:  # durable.py pulls in LangGraph and psycopg: only with checkpoints
    from .durable import DurableRuns

log = logging.getLogger("catena.python_agent")

MAX_TASK_BYTES = 64 * 1024
MAX_DOCUMENTS = 64
MAX_CONTEXT_BYTES = 1024 * 1024
MAX_HISTORY = 256
MAX_REQUEST_ID_CHARS = 128
# Caps per task, as the Rust service's defaults (DEFAULT_MAX_STEPS, DEFAULT_MAX_TOKENS).
MAX_STEPS = 50
MAX_TOKENS = 200_000
NO_CHECKPOINTS = "this agent service keeps no checkpoints"

_ROLE_NAMES = {
    agent_pb2.ROLE_SYSTEM: "system",
    agent_pb2.ROLE_USER: "user",
    agent_pb2.ROLE_ASSISTANT: "assistant",
}


def validate(request: agent_pb2.RunTaskRequest, offered: list[str]) -> None:
    if not request.task.strip():
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "task is empty")
    size = len(request.task.encode())
    if size > MAX_TASK_BYTES:
        raise Rejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"task is {size} bytes; this service accepts at most {MAX_TASK_BYTES}",
        )
    if len(request.request_id) > MAX_REQUEST_ID_CHARS:
        raise Rejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request_id is longer than {MAX_REQUEST_ID_CHARS} characters",
        )
    if len(request.documents) > MAX_DOCUMENTS:
        raise Rejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request has {len(request.documents)} context documents; this service accepts "
            f"at most {MAX_DOCUMENTS}",
        )
    context_bytes = sum(len(d.content.encode()) for d in request.documents)
    if context_bytes > MAX_CONTEXT_BYTES:
        raise Rejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"context documents hold {context_bytes} bytes of text; this service accepts at "
            f"most {MAX_CONTEXT_BYTES}",
        )
    if len(request.history) > MAX_HISTORY:
        raise Rejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"history has {len(request.history)} messages; this service accepts at most "
            f"{MAX_HISTORY}",
        )
    for i, m in enumerate(request.history):
        if m.role not in _ROLE_NAMES:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"history[{i}]: role is not set")
    for i, name in enumerate(request.allowed_tools):
        if not name.strip():
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"allowed_tools[{i}] is empty")
    unknown = sorted(set(request.allowed_tools) - set(offered))
    if unknown:
        raise Rejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"unknown tool(s) in allowed_tools: {', '.join(unknown)}; this service offers: "
            f"{', '.join(offered)}",
        )
    if request.HasField("limits") and request.limits.HasField("max_duration"):
        d = request.limits.max_duration
        if d.seconds < 0 or d.nanos < 0:
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT, "limits.max_duration is negative or malformed"
            )


def task_record(request: agent_pb2.RunTaskRequest, request_id: str) -> TaskRecord:
    """The validated request as the agent takes it: caller-sent system messages dropped (the
    instructions are the service's own), limits within the service's caps (0 = not asked: the
    loop's default steps, the token cap)."""
    dropped = sum(1 for m in request.history if m.role == agent_pb2.ROLE_SYSTEM)
    if dropped:
        log.warning("dropped %d caller-sent system message(s) request_id=%s", dropped, request_id)
    asked_steps = request.limits.max_steps if request.HasField("limits") else 0
    asked_tokens = request.limits.max_tokens if request.HasField("limits") else 0
    return TaskRecord(
        task=request.task,
        request_id=request_id,
        documents=[
            ContextDocument(content=d.content, id=d.id, source=d.source, score=d.score)
            for d in request.documents
        ],
        history=[
            (_ROLE_NAMES[m.role], m.content)
            for m in request.history
            if m.role != agent_pb2.ROLE_SYSTEM
        ],
        allowed_tools=list(request.allowed_tools),
        max_steps=min(asked_steps, MAX_STEPS) if asked_steps else 0,
        max_tokens=min(asked_tokens, MAX_TOKENS) if asked_tokens else MAX_TOKENS,
    )


def max_duration_s(request: agent_pb2.RunTaskRequest) -> float:
    if request.HasField("limits") and request.limits.HasField("max_duration"):
        return request.limits.max_duration.ToTimedelta().total_seconds()
    return 0.0


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex}"


class BearerAuth(grpc.ServerInterceptor):
    """Refuses `catena.agent.v1` calls without `authorization: Bearer <token>` (compared in
    constant time); health checks pass untouched."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        def deny(request, context):
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "this agent service needs `authorization: Bearer <token>`",
            )

        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny)
        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        if not handler_call_details.method.startswith("/catena.agent.v1."):
            return continuation(handler_call_details)
        given = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if isinstance(given, str):
            given = given.encode()
        if hmac.compare_digest(given, self._expected):
            return continuation(handler_call_details)
        if handler_call_details.method.endswith("/GetTask"):
            return self._deny_unary
        return self._deny_stream


class AgentService(agent_pb2_grpc.AgentServiceServicer):
    """Serves the agent loop over `catena.agent.v1`; with `durable`, every task is a durable
    run."""

    def __init__(
        self,
        model_factory: ModelFactory,
        retriever_k: int = 4,
        max_iterations: int = 8,
        extra_tools: Sequence[BaseTool] = (),
        durable: "DurableRuns | None" = None,
    ):
        self.model_factory = model_factory
        self.retriever_k = retriever_k
        self.max_iterations = max_iterations
        self.extra_tools = list(extra_tools)
        self.durable = durable
        self.offered = [SEARCH_DOCUMENTS, calculator.name, *(t.name for t in self.extra_tools)]

    def RunTask(self, request, context) -> Iterator[agent_pb2.RunTaskResponse]:
        invocation_metadata = tuple(context.invocation_metadata())
        metadata = dict(invocation_metadata)
        request_id = request.request_id or uuid.uuid4().hex[:12]
        headers = {k: metadata[k] for k in ("traceparent", "tracestate") if k in metadata}
        log.info(
            "task received request_id=%s run_id=%s %s",
            request_id, request.run_id, " ".join(f"{k}={v}" for k, v in headers.items()),
        )
        # Join the caller's trace: the task's span is a child of the caller's span.
        span = telemetry.start_run_task_span(
            telemetry.parent_from_metadata(invocation_metadata), request_id
        )
        yield from traced(
            context, span, lambda call_span: self._run_task(request, context, request_id, call_span)
        )

    def _run_task(
        self, request, context, request_id: str, span: CallSpan
    ) -> Iterator[agent_pb2.RunTaskResponse]:
        try:
            validate(request, self.offered)
            if request.run_id:
                check_run_id(request.run_id)
        except Rejected as e:
            log.info("task rejected request_id=%s: %s", request_id, e)
            span.end((e.code.name, str(e)))
            context.abort(e.code, str(e))
            return
        run_id = request.run_id or new_run_id()
        record = task_record(request, request_id)
        log.info(
            "task limits request_id=%s max_steps=%d max_tokens=%d",
            request_id, record.max_steps, record.max_tokens,
        )
        call_deadline = deadline(context, max_duration_s(request))
        durable = self.durable
        if durable is not None:
            span.span.set_attribute("catena.run_id", run_id)

            def start() -> Iterator[agent_pb2.RunTaskResponse]:
                durable.claim(run_id, record)
                return durable.advance(context, span, run_id, record, call_deadline)

            yield from self._durable(context, span, start)
            return
        yield from self._run_plain(context, span, request_id, run_id, record, call_deadline)

    def _run_plain(
        self, context, span: CallSpan, request_id: str, run_id: str, record: TaskRecord,
        call_deadline: float,
    ) -> Iterator[agent_pb2.RunTaskResponse]:
        """A task without checkpoints: the agent loop in a worker thread."""
        cancel = threading.Event()
        ended = threading.Event()  # set once the call's last event is decided

        def on_rpc_done() -> None:
            # Runs when the call ends for any reason; without a last event, the client left.
            if not ended.is_set():
                late = time.monotonic() >= call_deadline
                why = "the deadline passed" if late else "the client went away"
                log.info("task stopped request_id=%s: %s", request_id, why)
                span.end(("DEADLINE_EXCEEDED" if late else "CANCELLED", why))
            cancel.set()

        context.add_callback(on_rpc_done)
        events: "queue.Queue[tuple]" = queue.Queue()
        tools = toolbox(record, self.retriever_k, self.extra_tools)
        messages = initial_messages(record, tools.searchable)
        try:
            model = self.model_factory(record.task, cancel)
        except Exception as e:  # noqa: BLE001
            span.end(("INTERNAL", f"cannot start the task: {e}"))
            context.abort(grpc.StatusCode.INTERNAL, f"cannot start the task: {e}")
            return

        spent = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        worker = threading.Thread(
            target=run_agent,
            args=(
                model, tools.tools, messages, record.limits, cancel, events.put,
                self.max_iterations, request_id,
            ),
            kwargs={"trace_context": trace.set_span_in_context(span.span), "spent": spent},
            name=f"task-{request_id}",
            daemon=True,
        )
        worker.start()
        sequence = 0

        def event(**kw) -> agent_pb2.RunTaskResponse:
            nonlocal sequence
            sequence += 1
            return agent_pb2.RunTaskResponse(sequence=sequence, run_id=run_id, **kw)

        documents = record.documents
        try:
            while True:
                remaining = call_deadline - time.monotonic()
                if remaining <= 0:
                    message = "the task did not finish within its deadline"
                    log.info("task stopped request_id=%s: %s", request_id, message)
                    ended.set()
                    cancel.set()
                    span.end(("DEADLINE_EXCEEDED", message))
                    yield event(
                        error=agent_pb2.ErrorEvent(
                            code=agent_pb2.ERROR_CODE_DEADLINE_EXCEEDED,
                            message=message,
                            usage=agent_pb2.Usage(**spent),
                        )
                    )
                    context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
                    context.set_details(message)
                    return
                if not context.is_active():
                    span.end(("CANCELLED", "the client went away"))
                    return
                try:
                    item = events.get(timeout=min(remaining, POLL_S))
                except queue.Empty:
                    continue
                kind = item[0]
                if kind == "step":
                    yield event(
                        step_started=agent_pb2.StepStarted(
                            step=item[1], usage=agent_pb2.Usage(**spent)
                        )
                    )
                elif kind == "text":
                    yield event(text_delta=agent_pb2.TextDelta(text=item[1]))
                elif kind == "tool_call":
                    _, call_id, name, args = item
                    yield event(
                        tool_call=agent_pb2.ToolCall(id=call_id, name=name, arguments_json=args)
                    )
                elif kind == "tool_result":
                    _, call_id, name, content, is_error = item
                    yield event(
                        tool_result=agent_pb2.ToolResult(
                            id=call_id, name=name, content=content, is_error=is_error
                        )
                    )
                elif kind == "final":
                    _, text, usage = item
                    # The documents the searches returned, else every context document.
                    picked = tools.sources.positions or list(range(len(documents)))
                    answer = agent_pb2.FinalAnswer(
                        text=text,
                        sources=[
                            agent_pb2.Source(
                                id=documents[i].id,
                                source=documents[i].source,
                                score=documents[i].score,
                            )
                            for i in picked
                        ],
                        usage=agent_pb2.Usage(**usage),
                    )
                    log.info(
                        "task answered request_id=%s tokens=%d", request_id, usage["total_tokens"]
                    )
                    ended.set()
                    yield event(final_answer=answer)
                    return
                elif kind == "error":
                    _, code, message, retryable = item
                    log.info("task failed request_id=%s %s: %s", request_id, code, message)
                    ended.set()
                    span.end((code, message))
                    yield event(
                        error=agent_pb2.ErrorEvent(
                            code=agent_pb2.ErrorCode.Value(f"ERROR_CODE_{code}"),
                            message=message,
                            retryable=retryable,
                            usage=agent_pb2.Usage(**spent),
                        )
                    )
                    context.set_code(STATUS[code])
                    context.set_details(message)
                    return
        finally:
            cancel.set()

    # --- durable runs ----------------------------------------------------------------------

    @staticmethod
    def _durable(context, span: CallSpan, start) -> Iterator[agent_pb2.RunTaskResponse]:
        """The events of `start()`; a `Rejected` before the first event (from `start` or the
        run's own checks) becomes the call's status."""
        try:
            events = start()
            first = next(events, None)
        except Rejected as e:
            log.info("call refused: %s", e)
            span.end((e.code.name, str(e)))
            context.abort(e.code, str(e))
            return
        if first is not None:
            yield first
            yield from events

    def _continue(self, request, context, method: str) -> Iterator[agent_pb2.RunTaskResponse]:
        """`ResumeTask` and `Decide`: the run goes on where it stands."""
        log.info("%s run_id=%s", method, request.run_id)
        span = telemetry.start_run_task_span(
            telemetry.parent_from_metadata(tuple(context.invocation_metadata())),
            "",
            method,
            request.run_id,
        )

        def body(call_span: CallSpan) -> Iterator[agent_pb2.RunTaskResponse]:
            durable = self.durable
            if durable is None:
                call_span.end(("FAILED_PRECONDITION", NO_CHECKPOINTS))
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_CHECKPOINTS)
                return

            def start() -> Iterator[agent_pb2.RunTaskResponse]:
                check_run_id(request.run_id)
                decision = durable.decision(request) if method == "Decide" else None
                record = durable.task(request.run_id)
                return durable.advance(
                    context,
                    call_span,
                    request.run_id,
                    record,
                    deadline(context),
                    call_id=request.call_id if decision is not None else None,
                    decision=decision,
                )

            yield from self._durable(context, call_span, start)

        yield from traced(context, span, body)

    def ResumeTask(self, request, context) -> Iterator[agent_pb2.RunTaskResponse]:
        yield from self._continue(request, context, "ResumeTask")

    def Decide(self, request, context) -> Iterator[agent_pb2.RunTaskResponse]:
        yield from self._continue(request, context, "Decide")

    def GetTask(self, request, context) -> agent_pb2.GetTaskResponse:
        if self.durable is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_CHECKPOINTS)
        try:
            check_run_id(request.run_id)
            return self.durable.get(request)
        except Rejected as e:
            context.abort(e.code, str(e))
