"""What every streaming call of the service shares: its deadline, its span, its closing status."""

from __future__ import annotations

import re
import threading
import time
from typing import Callable, Iterator

import grpc
from opentelemetry import trace

from . import telemetry

# The longest any call may run, whatever the client asks.
MAX_DURATION_S = 600.0
# How often a call checks the deadline and whether the client is still there.
POLL_S = 0.05

# ErrorCode name -> gRPC status of the closing call (as the Rust adapter maps them).
STATUS = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "LIMIT_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "CANCELLED": grpc.StatusCode.CANCELLED,
    "MODEL_FAILED": grpc.StatusCode.INTERNAL,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}

_RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


class Rejected(Exception):
    """A request refused before anything runs."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def check_run_id(run_id: str) -> None:
    """Refuses a malformed run id (the rules of the contract and of the Rust service)."""
    if not 1 <= len(run_id) <= 200:
        raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, "run_id: a run id has 1 to 200 characters")
    if not _RUN_ID.fullmatch(run_id) or run_id.startswith("."):
        raise Rejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            "run_id: a run id may only contain letters, digits, '.', '_', ':' and '-' "
            "(not first '.')",
        )
    if run_id.endswith((".events", ".task")):
        raise Rejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            "run_id: `.events` and `.task` endings are reserved by the service",
        )


def deadline(context: grpc.ServicerContext, max_duration_s: float = 0.0) -> float:
    """The call's deadline (monotonic): the earliest of the gRPC deadline, `max_duration_s`
    (0: none) and the service cap."""
    budget = MAX_DURATION_S
    remaining = context.time_remaining()
    if remaining is not None:
        budget = min(budget, remaining)
    if max_duration_s > 0:
        budget = min(budget, max_duration_s)
    return time.monotonic() + budget


class CallSpan:
    """The SERVER span of one call, ended once: by the call's code, or by the call's done
    callback when the client went away (the generator may never resume then)."""

    def __init__(self, span: trace.Span):
        self.span = span
        self._lock = threading.Lock()
        self._open = True

    def end(self, error: tuple[str, str] | None = None) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
            if error is not None:
                telemetry.set_error(self.span, *error)
            self.span.end()


def traced(
    context: grpc.ServicerContext,
    span: trace.Span,
    body: Callable[[CallSpan], Iterator],
) -> Iterator:
    """Streams `body`'s events inside `span`, and ends the span however the call ends."""
    call_span = CallSpan(span)
    try:
        yield from body(call_span)
    except GeneratorExit:
        # gRPC closes the generator when the call ends without it (the client went away, or
        # the deadline passed): say so on the span, which this `finally` would otherwise end
        # first with no status, before the call's done callback runs.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            call_span.end(("DEADLINE_EXCEEDED", "the deadline passed"))
        else:
            call_span.end(("CANCELLED", "the client went away"))
        raise
    finally:
        call_span.end()
