"""The durable agent: the tool-calling loop as a LangGraph `StateGraph`, checkpointed after
every super-step (the service compiles it with a `PostgresSaver`; thread id = run id).

    START -> model -> tools -> tools ... -> model -> ... -> END

- `model`: one model turn (limits checked first). Its reply and tool calls go to the state;
  a reply without tool calls completes the run.
- `tools`: ONE tool call of the current turn per super-step, so that each call's result is
  checkpointed before the next call, and all of them before the next model turn. A call of a
  tool that needs approval stops the run with `interrupt()` (the payload is the
  `ApprovalRequired` event); the decision comes back through `Command(resume=...)` and is
  checkpointed on its own before the call runs (approve, perhaps with edited arguments),
  goes to the model as the call's result (reject) or ends the run (cancel).

Exactly once: a call whose result is checkpointed is never run again. Because the process may
die between a tool finishing and its checkpoint, each call also goes through the run's tool
journal (the `tool_call` / `tool_result` rows of the event log, runs.py): a call with a logged
result is not run again (the logged result is used); a call that was logged as started and
never finished is run again only when its tool has no outside effect (`IDEMPOTENT_TOOLS`),
otherwise the model is told it was interrupted (as the Rust `DurableAgent` does).

The state holds only what a resumed run needs; everything live for one call (the model, the
tools, the event journal, the cancel flag, the trace context) is the graph's runtime context.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from opentelemetry.context import Context

from catena.agent.v1 import agent_pb2

from . import telemetry
from .agent import Cancelled, Limits, check, limit_error, model_turn, run_tool
from .runs import Journal
from .tools import IDEMPOTENT_TOOLS, SourceRecorder

log = logging.getLogger("catena.python_agent")

# What the model is told about a call with outside effects that was running when the run
# stopped (the Rust DurableAgent's words).
INTERRUPTED = (
    "interrupted: the agent stopped while this call was running; it may or may not have taken "
    "effect, and it was not repeated"
)

RUNNING, COMPLETED, FAILED, CANCELLED = "running", "completed", "failed", "cancelled"


def zero_usage() -> dict[str, int]:
    return {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


class RunState(TypedDict, total=False):
    """A durable run's checkpointed state.

    `calls`: the current turn's tool calls, each `{"id", "name", "arguments"` (JSON text, as it
    runs: edited arguments replace the model's)`, "status"` ("pending", "approved",
    "finished")`, "content", "is_error"}`; empty between turns.
    `sources`: positions of the context documents the run's searches returned.
    """

    messages: Annotated[list[BaseMessage], add_messages]
    calls: list[dict[str, Any]]
    iterations: int
    usage: dict[str, int]
    status: str
    answer: str
    error: str
    sources: list[int]


def initial_state(messages: list[BaseMessage]) -> RunState:
    return RunState(
        messages=messages,
        calls=[],
        iterations=0,
        usage=zero_usage(),
        status=RUNNING,
        answer="",
        error="",
        sources=[],
    )


@dataclass
class RunContext:
    """What one call (RunTask, ResumeTask, Decide) runs the graph with; never checkpointed."""

    model: BaseChatModel
    tools: list[BaseTool]
    sources: SourceRecorder
    journal: Journal
    cancel: threading.Event
    limits: Limits
    max_iterations: int = 8
    approval: frozenset[str] = frozenset()
    trace_context: Context | None = None
    bound: Any = field(init=False)
    by_name: dict[str, BaseTool] = field(init=False)

    def __post_init__(self) -> None:
        self.bound = self.model.bind_tools(self.tools) if self.tools else self.model
        self.by_name = {t.name: t for t in self.tools}


def first_step(state: RunState) -> int:
    """The step a call continuing the run starts in: the next model turn between turns, else
    the current one."""
    iterations = int(state.get("iterations", 0))
    if not state.get("calls") and state.get("status", RUNNING) == RUNNING:
        return iterations + 1
    return max(iterations, 1)


def _unique_calls(tool_calls: list[dict[str, Any]], messages: list[BaseMessage], turn: int):
    """The reply's calls with ids no other call of the run has (ids key decisions and the tool
    journal; a model may send none, or reuse one every turn)."""
    used = {
        c.get("id")
        for m in messages
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    }
    out = []
    for i, call in enumerate(tool_calls):
        call_id = call.get("id") or ""
        if not call_id or call_id in used:
            call_id = f"call_{turn}_{i}"
            while call_id in used:
                call_id += "_"
        used.add(call_id)
        out.append({"name": call["name"], "args": call.get("args", {}), "id": call_id, "type": "tool_call"})
    return out


def _model(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    check(ctx.cancel)
    usage = dict(state.get("usage") or zero_usage())
    iterations = int(state.get("iterations", 0))
    limit = limit_error(ctx.limits, ctx.max_iterations, iterations, usage["total_tokens"])
    if limit:
        return {"status": FAILED, "error": limit}
    step = iterations + 1
    ctx.journal.usage = dict(usage)
    ctx.journal.step(step)
    with telemetry.attached(ctx.trace_context):
        reply = model_turn(ctx.bound, ctx.model, state["messages"], ctx.cancel, ctx.journal.text)
    for key in usage:
        usage[key] += int((reply.usage_metadata or {}).get(key, 0))
    ctx.journal.usage = dict(usage)
    calls = _unique_calls(reply.tool_calls, state["messages"], step)
    message = AIMessage(content=reply.content, tool_calls=calls, usage_metadata=reply.usage_metadata)
    update: dict[str, Any] = {"messages": [message], "iterations": step, "usage": usage}
    if not calls:
        update.update(status=COMPLETED, answer=message.text, calls=[])
    else:
        update["calls"] = [
            {
                "id": c["id"],
                "name": c["name"],
                "arguments": json.dumps(c["args"], separators=(",", ":")),
                "status": "pending",
            }
            for c in calls
        ]
    return update


def _tools(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    check(ctx.cancel)
    calls = [dict(c) for c in state["calls"]]
    i = next(i for i, c in enumerate(calls) if c["status"] != "finished")
    call = calls[i]
    if call["status"] == "pending" and call["name"] in ctx.approval:
        # Stops the run here; on `Command(resume=decision)` this node runs again from the top
        # and `interrupt` returns the decision.
        decision = interrupt(
            {"call_id": call["id"], "name": call["name"], "arguments_json": call["arguments"]}
        )
        kind = decision.get("decision")
        if kind == "cancel":
            return {"status": CANCELLED}
        if kind == "reject":
            message = decision.get("message", "")
            call.update(
                status="finished", content=f"Error: rejected by a person: {message}", is_error=True
            )
        else:
            call["status"] = "approved"
            edited = decision.get("arguments_json", "")
            if edited.strip():
                call["arguments"] = edited
        calls[i] = call
        # The decision is checkpointed before the call runs (in the next super-step).
        return _after_call(calls)
    content, is_error = _run_once(ctx, call)
    call.update(status="finished", content=content, is_error=is_error)
    calls[i] = call
    update = _after_call(calls)
    known = list(state.get("sources") or [])
    found = [p for p in ctx.sources.positions if p not in known]
    if found:
        update["sources"] = known + found
    return update


def _after_call(calls: list[dict[str, Any]]) -> dict[str, Any]:
    if all(c["status"] == "finished" for c in calls):
        # The turn is over: its results go to the conversation, in call order.
        return {
            "calls": [],
            "messages": [
                ToolMessage(content=c["content"], tool_call_id=c["id"], name=c["name"])
                for c in calls
            ],
        }
    return {"calls": calls}


def _run_once(ctx: RunContext, call: dict[str, Any]) -> tuple[str, bool]:
    """Runs one call unless the journal says it ran: (content, is_error)."""
    call_id, name = call["id"], call["name"]
    seen = ctx.journal.call(call_id)
    if seen.result is not None:
        # It finished, but the process stopped before the result was checkpointed.
        return seen.result
    if seen.started and name not in IDEMPOTENT_TOOLS:
        log.warning(
            "run %s: call %s (%s) was running when the run stopped; not repeating it",
            ctx.journal.run_id, call_id, name,
        )
        return f"Error: {INTERRUPTED}", True
    ctx.journal.record(
        "tool_call",
        agent_pb2.ToolCall(id=call_id, name=name, arguments_json=call["arguments"]),
        call_id=call_id,
    )
    try:
        args = json.loads(call["arguments"])
    except ValueError as e:
        content, is_error = f"Error: the arguments are not JSON: {e}", True
    else:
        with telemetry.attached(ctx.trace_context):
            content, is_error = run_tool(ctx.by_name, name, args, call_id)
    try:
        ctx.journal.record(
            "tool_result",
            agent_pb2.ToolResult(id=call_id, name=name, content=content, is_error=is_error),
            call_id=call_id,
        )
    except Cancelled:
        # The call ended meanwhile (deadline, client gone): the result is checkpointed all
        # the same, so the tool does not run again; the next node stops the run.
        pass
    return content, is_error


def _after_model(state: RunState) -> str:
    return "tools" if state.get("status") == RUNNING and state.get("calls") else END


def _after_tools(state: RunState) -> str:
    if state.get("status") != RUNNING:
        return END
    return "tools" if state.get("calls") else "model"


def agent_graph() -> StateGraph:
    """The graph, to compile with a checkpointer."""
    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("model", _model)
    graph.add_node("tools", _tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", _after_model, ["tools", END])
    graph.add_conditional_edges("tools", _after_tools, ["tools", "model", END])
    return graph
