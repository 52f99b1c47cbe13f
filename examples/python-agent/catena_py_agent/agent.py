"""The agent loop: a LangChain chat model with bound tools, called until it answers.

Events go to `emit` as plain tuples, in the order things happen, the same order the Rust
service sends them:

    ("step", n)                      a model turn began (n from 1)
    ("text", delta)                  more text from the model
    ("tool_call", id, name, args)    args as JSON text
    ("tool_result", id, name, content, is_error)
    ("final", text, usage)           usage: {"input_tokens", "output_tokens", "total_tokens"}
    ("error", code, message, retryable)   code: an ErrorCode name, for example "MODEL_FAILED"

The loop checks `cancel` between model chunks and tool calls: the service sets it when the
deadline passes or the client goes away, and the run stops there.

Each model call runs in a `chat {model}` span and each tool execution in an
`execute_tool {tool}` span (see telemetry.py), children of the OpenTelemetry context the
service hands over (`trace_context`: its `agent.run_task` span).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool
from opentelemetry.context import Context

from . import telemetry

log = logging.getLogger("catena.python_agent")

Emit = Callable[[tuple], None]


@dataclass
class Limits:
    """Limits of one task; 0 means none."""

    max_steps: int = 0
    max_tokens: int = 0


class Cancelled(Exception):
    """The task was cancelled (deadline or client gone)."""


def run_agent(
    model: BaseChatModel,
    tools: list[BaseTool],
    messages: list[BaseMessage],
    limits: Limits,
    cancel: threading.Event,
    emit: Emit,
    max_iterations: int = 8,
    request_id: str = "",
    trace_context: Context | None = None,
    spent: dict[str, int] | None = None,
) -> None:
    """Runs the loop until a final answer, an error or cancellation. Never raises.

    `spent`: the token counts so far ({"input_tokens", "output_tokens", "total_tokens"}),
    updated in place after every model call, so the service can report them in step and
    error events.

    `trace_context`: the OpenTelemetry context the model and tool spans are children of (the
    worker thread this runs in does not inherit the caller's).
    """
    try:
        with telemetry.attached(trace_context):
            _loop(model, tools, messages, limits, cancel, emit, max_iterations, spent)
    except Cancelled:
        log.info("agent of request_id=%s stopped: cancelled", request_id)
    except Exception as e:  # noqa: BLE001 - every failure becomes an error event
        if cancel.is_set():
            log.info("agent of request_id=%s stopped: cancelled", request_id)
            return
        log.warning("agent of request_id=%s failed: %s", request_id, e)
        emit(("error", "MODEL_FAILED", f"the chat model failed: {e}", False))


def check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled()


def limit_error(limits: Limits, max_iterations: int, turns: int, total_tokens: int) -> str | None:
    """Why the agent may not take another model turn after `turns` turns and `total_tokens`
    tokens (a LIMIT_EXCEEDED message), or None."""
    if turns >= (limits.max_steps or max_iterations + 1):
        return f"the agent went over max_steps = {limits.max_steps or max_iterations}"
    if limits.max_tokens and total_tokens >= limits.max_tokens:
        return f"the agent used {total_tokens} tokens of its budget of {limits.max_tokens}"
    return None


def model_turn(
    bound: Any,
    model: BaseChatModel,
    messages: list[BaseMessage],
    cancel: threading.Event,
    on_text: Callable[[str], None],
) -> AIMessage:
    """One model call in a `chat {model}` span: streams the reply (each piece of text to
    `on_text`, checking `cancel` between chunks) and returns it, usage included."""
    provider, model_name = telemetry.model_identity(model)
    acc = None
    with telemetry.chat_span(provider, model_name, not_failures=(Cancelled,)) as span:
        for chunk in bound.stream(messages):
            check(cancel)
            text = chunk.text
            if text:
                on_text(text)
            acc = chunk if acc is None else acc + chunk
        if acc is None:
            raise RuntimeError("the model returned nothing")
        telemetry.record_chat_response(span, acc)
    return AIMessage(content=acc.content, tool_calls=acc.tool_calls, usage_metadata=acc.usage_metadata)


def _loop(model, tools, messages, limits, cancel, emit, max_iterations, spent=None) -> None:
    bound = model.bind_tools(tools) if tools else model
    by_name = {t.name: t for t in tools}
    usage = spent if spent is not None else {}
    usage.update({"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
    step = 0
    while True:
        check(cancel)
        limit = limit_error(limits, max_iterations, step, usage["total_tokens"])
        if limit:
            emit(("error", "LIMIT_EXCEEDED", limit, False))
            return
        step += 1
        emit(("step", step))
        reply = model_turn(bound, model, messages, cancel, lambda text: emit(("text", text)))
        for key in usage:
            usage[key] += int((reply.usage_metadata or {}).get(key, 0))
        messages.append(reply)
        if not reply.tool_calls:
            emit(("final", reply.text, dict(usage)))
            return
        for call in reply.tool_calls:
            check(cancel)
            call_id = call.get("id") or f"call_{step}"
            name = call["name"]
            args = call.get("args", {})
            emit(("tool_call", call_id, name, json.dumps(args, separators=(",", ":"))))
            content, is_error = run_tool(by_name, name, args, call_id)
            check(cancel)
            emit(("tool_result", call_id, name, content, is_error))
            messages.append(ToolMessage(content=content, tool_call_id=call_id, name=name))


def run_tool(
    by_name: dict[str, BaseTool], name: str, args: Any, call_id: str
) -> tuple[str, bool]:
    """Runs one tool call; failures go back to the model as `Error: …` text."""
    tool = by_name.get(name)
    if tool is None:
        offered = ", ".join(by_name) or "none"
        return f"Error: unknown tool `{name}`; the tools are: {offered}", True
    with telemetry.tool_span(name, call_id) as span:
        try:
            out = tool.invoke(args)
        except Exception as e:  # noqa: BLE001 - the model sees the error and may correct itself
            telemetry.set_error(span, "tool_error", str(e))
            return f"Error: {e}", True
    return (out if isinstance(out, str) else json.dumps(out)), False
