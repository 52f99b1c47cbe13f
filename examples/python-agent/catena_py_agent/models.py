"""Chat models for the Python agent service.

- `OPENAI_API_KEY` set: LangChain's `ChatOpenAI` (model `OPENAI_MODEL`, default
  `gpt-4o-mini`; `OPENAI_BASE_URL` for any OpenAI-compatible server). `langchain-openai` is NOT
  in requirements.txt (it is heavy); install it into the venv yourself to use this.
- `CATENA_PY_AGENT_SCRIPT=/path/to/script.json`: a TEST FIXTURE mode. A scripted LangChain chat
  model answers from the file instead of a real model; the integration tests use it to check
  the contract without a model. It is never chosen implicitly.

Script format (JSON):

    {"scripts": [
        {"match": "garbage collector",          # picked when the task contains this text
         "steps": [                             # one entry per model turn
             {"tool_calls": [{"name": "search_documents", "args": {"query": "rust gc"}}]},
             {"text": "Rust has no garbage collector.", "delay_s": 0}
         ]}
    ]}

A bare list of steps serves every task. The turn is the number of model replies since the
task's message (so a durable run resumed in another process goes on with the right step). Tool
call ids are `call_<turn>` (turn from 0), as the Rust `ScriptedChatModel` numbers them; `"id"`
overrides. `delay_s` makes the turn slow (it stops early when the task is cancelled).
`"wait_for_file": "/path"` holds the turn until that file exists (the tests kill the service
there); `{last_tool_result}` in `text` is replaced by the last tool result the model got.
Usage is counted in words, like the Rust double.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

SCRIPT_ENV = "CATENA_PY_AGENT_SCRIPT"


class ScriptError(RuntimeError):
    """The script has no answer for this turn."""


def _words(text: str) -> int:
    return len(text.split())


def _turn(messages: list[BaseMessage]) -> int:
    """Model replies since the last user message: the turn this call is."""
    n = 0
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            break
        if isinstance(m, AIMessage):
            n += 1
    return n


def _last_tool_result(messages: list[BaseMessage]) -> str:
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            return m.text
    return ""


class ScriptedChatModel(BaseChatModel):
    """A LangChain chat model that answers from a list of scripted turns (test fixture)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    steps: list[dict[str, Any]]
    cancel: threading.Event = Field(default_factory=threading.Event)
    chunk_chars: int = 4

    @property
    def _llm_type(self) -> str:
        return "catena-scripted"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any):
        # The provider and model the `chat` spans report, as the Rust ScriptedChatModel does.
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "scripted"
        params["ls_model_name"] = "scripted-model"
        return params

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        n = _turn(messages)
        if n >= len(self.steps):
            raise ScriptError(f"the script has no step {n + 1} (it has {len(self.steps)})")
        step = self.steps[n]
        delay = float(step.get("delay_s", 0))
        if delay > 0 and self.cancel.wait(delay):
            raise ScriptError("cancelled")
        gate = step.get("wait_for_file")
        while gate and not os.path.exists(gate):
            if self.cancel.wait(0.02):
                raise ScriptError("cancelled")
        text = step.get("text", "").replace("{last_tool_result}", _last_tool_result(messages))
        calls = []
        for j, call in enumerate(step.get("tool_calls", [])):
            default_id = f"call_{n}" if j == 0 else f"call_{n}_{j}"
            calls.append(
                {
                    "name": call["name"],
                    "args": call.get("args", {}),
                    "id": call.get("id", default_id),
                    "type": "tool_call",
                }
            )
        input_tokens = sum(_words(m.text) for m in messages)
        output_tokens = _words(text) + sum(
            max(1, _words(json.dumps(c["args"], separators=(",", ":")))) for c in calls
        )
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        return AIMessage(content=text, tool_calls=calls, usage_metadata=usage)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages)
        text = message.text
        for i in range(0, len(text), self.chunk_chars):
            yield ChatGenerationChunk(message=AIMessageChunk(content=text[i : i + self.chunk_chars]))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": json.dumps(c["args"], separators=(",", ":")),
                        "id": c["id"],
                        "index": i,
                        "type": "tool_call_chunk",
                    }
                    for i, c in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
            )
        )


@dataclass
class Script:
    """Scripted turns per task, read from a file."""

    entries: list[tuple[str, list[dict[str, Any]]]]

    @classmethod
    def load(cls, path: str) -> "Script":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, list):
            return cls([("", data)])
        return cls([(e.get("match", ""), e["steps"]) for e in data["scripts"]])

    def steps_for(self, task: str) -> list[dict[str, Any]]:
        for match, steps in self.entries:
            if match in task:
                return steps
        raise ScriptError("no script matches this task")


ModelFactory = Callable[[str, threading.Event], BaseChatModel]


def model_from_env() -> tuple[ModelFactory, str]:
    """A factory of per-task chat models (task text, cancel event -> model) and its description."""
    script_path = os.environ.get(SCRIPT_ENV, "").strip()
    if script_path:
        script = Script.load(script_path)

        def scripted(task: str, cancel: threading.Event) -> BaseChatModel:
            return ScriptedChatModel(steps=script.steps_for(task), cancel=cancel)

        return scripted, f"the SCRIPTED test model from {script_path} ({SCRIPT_ENV})"
    if os.environ.get("OPENAI_API_KEY", "").strip():
        try:
            from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]
        except ImportError:
            raise SystemExit(
                "OPENAI_API_KEY is set but langchain-openai is not installed: "
                "bash scripts/python-agent.sh python -m pip install langchain-openai"
            ) from None
        name = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        # Every call is bounded: a hung provider connection must not hold a worker thread (the
        # task's own deadline stops the loop between chunks, not inside a blocked read).
        timeout = float(os.environ.get("CATENA_PY_AGENT_MODEL_TIMEOUT", "60"))
        model = ChatOpenAI(model=name, stream_usage=True, timeout=timeout, max_retries=2)
        return (lambda _task, _cancel: model), f"OpenAI ({name})"
    raise SystemExit(
        "no model configured: set OPENAI_API_KEY (with langchain-openai installed), or "
        f"{SCRIPT_ENV}=/path/to/script.json for the scripted test model"
    )
