"""Durable runs over the contract: `RunTask` under a run id, `ResumeTask`, `Decide` and
`GetTask`, on the LangGraph agent (graph.py) checkpointed in PostgreSQL by LangGraph's
`PostgresSaver` (thread id = run id), with each run's task and events in runs.py's tables.

Semantics follow the Rust service (catena_agents::grpc, durable.rs):

- `RunTask` claims the run id (ALREADY_EXISTS when taken) and saves the task, then runs.
- `ResumeTask` continues from the latest checkpoint (NOT_FOUND for an unknown run); a finished
  run sends its last event again, a run waiting for approval its `ApprovalRequired`.
- `Decide` answers the call the run waits for (FAILED_PRECONDITION for another call or a run
  not waiting; INVALID_ARGUMENT for edited arguments that are not JSON, before anything runs).
- Every call that advances a run first says which step it is in (`StepStarted`), and numbers
  its events on from the run's log; every event carries the run id and is logged before it is
  sent. `GetTask` reads the status from the checkpoint and replays the log.
- Two calls advancing one run at once: the second ends with an `ErrorEvent` (UNAVAILABLE,
  retryable) and status ABORTED; the first carries on.
- The deadline is the gRPC deadline and the service cap (`max_duration` applies to the
  `RunTask` call that carries it); when it passes, or the client goes away, the agent stops at
  its next step and the run stays resumable.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any, Iterator, Sequence

import grpc
import psycopg
from langchain_core.tools import BaseTool
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.types import Command
from opentelemetry import trace

from catena.agent.v1 import agent_pb2

from .agent import Cancelled
from .calls import POLL_S, STATUS, CallSpan, Rejected
from .graph import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RunContext,
    RunState,
    agent_graph,
    first_step,
    initial_state,
)
from .models import ModelFactory
from .runs import TERMINAL, Busy, Journal, RunStore
from .task import TaskRecord, initial_messages, toolbox

log = logging.getLogger("catena.python_agent")

# `_work`'s input when the graph has nothing to run.
_NOTHING = object()

_STATUSES = {
    COMPLETED: agent_pb2.TASK_STATUS_COMPLETED,
    FAILED: agent_pb2.TASK_STATUS_FAILED,
    CANCELLED: agent_pb2.TASK_STATUS_CANCELLED,
}


class DurableRuns:
    """Runs tasks as durable runs; the service's durable half."""

    def __init__(
        self,
        store: RunStore,
        model_factory: ModelFactory,
        retriever_k: int = 4,
        max_iterations: int = 8,
        approval: Sequence[str] = (),
        extra_tools: Sequence[BaseTool] = (),
    ):
        self.store = store
        self.saver = PostgresSaver(store.pool)
        self.graph = agent_graph().compile(checkpointer=self.saver, name="catena-agent")
        self.model_factory = model_factory
        self.retriever_k = retriever_k
        self.max_iterations = max_iterations
        self.approval = frozenset(approval)
        self.extra_tools = list(extra_tools)

    @classmethod
    def connect(cls, url: str, max_connections: int, **kwargs: Any) -> "DurableRuns":
        """Connects to PostgreSQL at `url`, creating the tables if missing."""
        store = RunStore(url, max_connections=max_connections)
        store.open(lambda conn: PostgresSaver(conn).setup())
        return cls(store, **kwargs)

    def close(self) -> None:
        self.store.close()

    @staticmethod
    def _config(run_id: str) -> dict[str, Any]:
        # LangGraph's default of 25 super-steps per invocation is far too few when each tool
        # call is a super-step; the run's own limits (steps, tokens, deadline) bound it.
        return {"configurable": {"thread_id": run_id}, "recursion_limit": 100_000}

    def _snapshot(self, run_id: str) -> tuple[RunState, tuple]:
        """The run's latest checkpointed state (empty before the first) and its pending
        interrupts."""
        snapshot = self.graph.get_state(self._config(run_id))
        return snapshot.values or {}, tuple(snapshot.interrupts or ())

    @staticmethod
    def _status(values: RunState, interrupts: tuple) -> int:
        if values.get("status") in _STATUSES:
            return _STATUSES[values["status"]]
        if interrupts:
            return agent_pb2.TASK_STATUS_AWAITING_APPROVAL
        return agent_pb2.TASK_STATUS_RUNNING

    @staticmethod
    def decision(request: agent_pb2.DecideRequest) -> dict[str, Any]:
        """The decision as the graph's resume value; INVALID_ARGUMENT when malformed."""
        which = request.WhichOneof("decision")
        if which == "approve":
            edited = request.approve.arguments_json
            if edited.strip():
                try:
                    json.loads(edited)
                except ValueError as e:
                    raise Rejected(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"decision.approve.arguments_json is not JSON: {e}",
                    ) from None
            return {"decision": "approve", "arguments_json": edited}
        if which == "reject":
            return {"decision": "reject", "message": request.reject.message}
        if which == "cancel":
            return {"decision": "cancel"}
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "decision is not set")

    def task(self, run_id: str) -> TaskRecord:
        record = self.store.task(run_id)
        if record is None:
            raise Rejected(grpc.StatusCode.NOT_FOUND, f"run `{run_id}`")
        return record

    # --- the RPCs ------------------------------------------------------------------------

    def get(self, request: agent_pb2.GetTaskRequest) -> agent_pb2.GetTaskResponse:
        self.task(request.run_id)
        values, interrupts = self._snapshot(request.run_id)
        return agent_pb2.GetTaskResponse(
            status=self._status(values, interrupts),
            events=self.store.replay(request.run_id, request.from_sequence),
        )

    def claim(self, run_id: str, record: TaskRecord) -> None:
        if not self.store.claim(run_id, record):
            raise Rejected(grpc.StatusCode.ALREADY_EXISTS, f"run `{run_id}` exists already")

    def advance(
        self,
        context: grpc.ServicerContext,
        span: CallSpan,
        run_id: str,
        record: TaskRecord,
        deadline: float,
        call_id: str | None = None,
        decision: dict[str, Any] | None = None,
    ) -> Iterator[agent_pb2.RunTaskResponse]:
        """Runs the run on from where it stands (a new run from its start; with `decision`,
        the decision about call `call_id`) and streams its events. Raises `Rejected` before
        the first event."""
        out: "queue.Queue[agent_pb2.RunTaskResponse]" = queue.Queue()
        try:
            journal = Journal(self.store, run_id, out)
        except Busy as e:
            message = f"{e}; this call did not advance it"
            log.info("run %s: %s", run_id, message)
            span.end(("ABORTED", message))
            # Not logged: the other call owns the log; numbered after what it holds now.
            yield agent_pb2.RunTaskResponse(
                sequence=self.store.last_sequence(run_id) + 1,
                run_id=run_id,
                error=agent_pb2.ErrorEvent(
                    code=agent_pb2.ERROR_CODE_UNAVAILABLE, message=message, retryable=True
                ),
            )
            context.set_code(grpc.StatusCode.ABORTED)
            context.set_details(message)
            return
        worker: threading.Thread | None = None
        try:
            values, interrupts = self._snapshot(run_id)
            graph_input: Any = None  # None: on from the latest checkpoint
            run_graph = True
            if decision is not None:
                waiting = bool(interrupts) and interrupts[0].value.get("call_id") == call_id
                if not waiting or values.get("status") in _STATUSES:
                    raise Rejected(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"run `{run_id}` is not waiting for a decision about call `{call_id}`",
                    )
                graph_input = Command(resume=decision)
            elif values.get("status") in _STATUSES or interrupts:
                run_graph = False  # nothing to run: say again how it ended, or what it waits for
            cancel = threading.Event()
            tools = toolbox(record, self.retriever_k, self.extra_tools)
            try:
                model = self.model_factory(record.task, cancel)
            except Exception as e:  # noqa: BLE001
                raise Rejected(grpc.StatusCode.INTERNAL, f"cannot start the task: {e}") from None
            if not values:
                # A new run, or one claimed and never checkpointed: from the task.
                graph_input = values = initial_state(initial_messages(record, tools.searchable))
            journal.usage = dict(values.get("usage") or journal.usage)
            ctx = RunContext(
                model=model,
                tools=tools.tools,
                sources=tools.sources,
                journal=journal,
                cancel=cancel,
                limits=record.limits,
                max_iterations=self.max_iterations,
                approval=self.approval,
                trace_context=trace.set_span_in_context(span.span),
            )
            journal.step(first_step(values))
            ended = threading.Event()

            def on_rpc_done() -> None:
                if not ended.is_set():
                    late = time.monotonic() >= deadline
                    why = "the deadline passed" if late else "the client went away"
                    log.info("run %s stopped: %s", run_id, why)
                    span.end(("DEADLINE_EXCEEDED" if late else "CANCELLED", why))
                cancel.set()

            context.add_callback(on_rpc_done)
            worker = threading.Thread(
                target=self._work,
                args=(run_id, record, graph_input if run_graph else _NOTHING, ctx),
                name=f"run-{run_id}",
                daemon=True,
            )
            worker.start()
            yield from self._stream(context, span, journal, out, deadline, cancel, ended, worker)
        finally:
            if worker is None:
                journal.release()

    def _stream(
        self,
        context: grpc.ServicerContext,
        span: CallSpan,
        journal: Journal,
        out: "queue.Queue[agent_pb2.RunTaskResponse]",
        deadline: float,
        cancel: threading.Event,
        ended: threading.Event,
        worker: threading.Thread,
    ) -> Iterator[agent_pb2.RunTaskResponse]:
        """The call's side: sends what the run logs until its last event, minding the
        deadline and the client."""
        late = False
        try:
            while True:
                if not late and time.monotonic() >= deadline:
                    late = True
                    cancel.set()
                    message = "the task did not finish within its deadline"
                    log.info("run %s stopped: %s", journal.run_id, message)
                    # Logged and queued after what the agent sent so far (unless it just
                    # ended: then its last event is queued already).
                    journal.finish(
                        "error",
                        agent_pb2.ErrorEvent(
                            code=agent_pb2.ERROR_CODE_DEADLINE_EXCEEDED,
                            message=message,
                            usage=agent_pb2.Usage(**journal.usage),
                        ),
                    )
                if not context.is_active():
                    journal.close()
                    span.end(("CANCELLED", "the client went away"))
                    return
                try:
                    event = out.get(timeout=POLL_S)
                except queue.Empty:
                    if not worker.is_alive() and out.empty():
                        # Cannot happen unless the worker died without a word; say so.
                        ended.set()
                        yield agent_pb2.RunTaskResponse(
                            sequence=journal.sequence + 1,
                            run_id=journal.run_id,
                            error=agent_pb2.ErrorEvent(
                                code=agent_pb2.ERROR_CODE_INTERNAL,
                                message="the run stopped without an outcome",
                            ),
                        )
                        context.set_code(grpc.StatusCode.INTERNAL)
                        return
                    continue
                kind = event.WhichOneof("event")
                if kind not in TERMINAL:
                    yield event
                    continue
                ended.set()
                if kind == "error":
                    code = agent_pb2.ErrorCode.Name(event.error.code).removeprefix("ERROR_CODE_")
                    log.info("run %s failed %s: %s", journal.run_id, code, event.error.message)
                    span.end((code, event.error.message))
                    yield event
                    context.set_code(STATUS.get(code, grpc.StatusCode.INTERNAL))
                    context.set_details(event.error.message)
                    return
                yield event
                return
        finally:
            cancel.set()

    def _work(self, run_id: str, record: TaskRecord, graph_input: Any, ctx: RunContext) -> None:
        """The agent's side (a worker thread): runs the graph, then logs how the call ended.
        Releases the run when done, and only then: no other call advances it meanwhile."""
        journal = ctx.journal
        try:
            if graph_input is not _NOTHING:
                for _ in self.graph.stream(
                    graph_input,
                    self._config(run_id),
                    context=ctx,
                    durability="sync",
                    stream_mode="updates",
                ):
                    pass
            values, interrupts = self._snapshot(run_id)
            self._close(journal, record, values, interrupts)
        except Cancelled:
            log.info("run %s: the agent stopped: cancelled", run_id)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error event
            if ctx.cancel.is_set():
                log.info("run %s: the agent stopped: cancelled", run_id)
            elif isinstance(e, psycopg.Error):
                log.warning("run %s: checkpoints failed: %s", run_id, e)
                self._fail(journal, "UNAVAILABLE", f"checkpoints: {e}", retryable=True)
            else:
                log.warning("run %s: the agent failed: %s", run_id, e)
                self._fail(journal, "MODEL_FAILED", f"the chat model failed: {e}")
        finally:
            journal.release()

    @staticmethod
    def _fail(journal: Journal, code: str, message: str, retryable: bool = False) -> None:
        event = agent_pb2.ErrorEvent(
            code=agent_pb2.ErrorCode.Value(f"ERROR_CODE_{code}"),
            message=message,
            retryable=retryable,
            usage=agent_pb2.Usage(**journal.usage),
        )
        try:
            journal.finish("error", event)
        except psycopg.Error:
            # The log is out of reach too: send the error all the same.
            journal.close()
            journal.out.put(
                agent_pb2.RunTaskResponse(
                    sequence=journal.sequence + 1, run_id=journal.run_id, error=event
                )
            )

    @staticmethod
    def _close(journal: Journal, record: TaskRecord, values: RunState, interrupts: tuple) -> None:
        """Logs the call's last event from where the run stands."""
        usage = agent_pb2.Usage(**(values.get("usage") or journal.usage))
        status = values.get("status")
        if status == COMPLETED:
            documents = record.documents
            picked = values.get("sources") or list(range(len(documents)))
            journal.finish(
                "final_answer",
                agent_pb2.FinalAnswer(
                    text=values.get("answer", ""),
                    sources=[
                        agent_pb2.Source(
                            id=documents[i].id, source=documents[i].source, score=documents[i].score
                        )
                        for i in picked
                        if 0 <= i < len(documents)
                    ],
                    usage=usage,
                ),
            )
        elif status == FAILED:
            journal.finish(
                "error",
                agent_pb2.ErrorEvent(
                    code=agent_pb2.ERROR_CODE_LIMIT_EXCEEDED, message=values.get("error", ""), usage=usage
                ),
            )
        elif status == CANCELLED:
            journal.finish(
                "error",
                agent_pb2.ErrorEvent(
                    code=agent_pb2.ERROR_CODE_CANCELLED, message="the run was cancelled", usage=usage
                ),
            )
        elif interrupts:
            ask = interrupts[0].value
            journal.finish(
                "approval_required",
                agent_pb2.ApprovalRequired(
                    call_id=ask["call_id"], name=ask["name"], arguments_json=ask["arguments_json"]
                ),
            )
        else:
            journal.finish(
                "error",
                agent_pb2.ErrorEvent(
                    code=agent_pb2.ERROR_CODE_INTERNAL,
                    message="the run stopped before its end",
                    usage=usage,
                ),
            )
