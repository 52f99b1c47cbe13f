"""What a durable run keeps in PostgreSQL beside LangGraph's checkpoints: its task and its
event log.

Everything lives in the schema `catena_py_agent` of the database the service is given (the
connections' `search_path` points there, so LangGraph's own tables `checkpoints`,
`checkpoint_blobs`, `checkpoint_writes` and `checkpoint_migrations` land there too):

- `runs`: one row per run id, the task as the service received it (a `TaskRecord` as JSON),
  written when the run is claimed: a second `RunTask` with the same id finds it taken, and
  another process rebuilds the agent from it to resume the run.
- `events`: every event the run emitted, in order, as its protobuf encoding, with the sequence
  number it was sent with. Each is written before it is sent (a client never saw an event that
  `GetTask` cannot replay) and numbering goes on across calls. The `tool_call` and
  `tool_result` rows, keyed by call id, are also the run's tool journal: a call with a result
  row finished (its result is reused, never run again), a call with only a `tool_call` row was
  running when the process stopped.

A call that advances a run holds a session advisory lock on it (`Journal.open`) for as long as
it runs: two calls cannot both advance one run, and the lock goes with the connection when a
process dies.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from catena.agent.v1 import agent_pb2

from .agent import Cancelled
from .task import TaskRecord

SCHEMA = "catena_py_agent"

_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
        run_id text PRIMARY KEY,
        task jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
        run_id text NOT NULL REFERENCES {SCHEMA}.runs (run_id) ON DELETE CASCADE,
        sequence bigint NOT NULL,
        kind text NOT NULL,
        call_id text,
        event bytea NOT NULL,
        PRIMARY KEY (run_id, sequence))""",
    f"""CREATE INDEX IF NOT EXISTS events_by_call ON {SCHEMA}.events (run_id, call_id)
        WHERE call_id IS NOT NULL""",
]

# The events that end a call.
TERMINAL = frozenset({"final_answer", "error", "approval_required"})


def _connect_kwargs() -> dict[str, Any]:
    # Autocommit: every statement stands alone (LangGraph's saver expects it, and a log row is
    # durable once written). dict_row: the saver reads columns by name.
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "row_factory": dict_row,
        "options": f"-c search_path={SCHEMA}",
    }


@dataclass
class CallJournal:
    """What the log knows about one tool call: whether it started, and its result if it
    finished (content, is_error)."""

    started: bool = False
    result: tuple[str, bool] | None = None


class RunStore:
    """The runs' tables and a connection pool (shared with LangGraph's `PostgresSaver`)."""

    def __init__(self, url: str, max_connections: int = 20):
        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs=_connect_kwargs(),
            open=False,
            name="catena-py-agent",
        )

    def open(self, migrate: Callable[["psycopg.Connection[Any]"], None], timeout_s: float = 30.0) -> None:
        """Opens the pool and creates the schema and tables if missing; `migrate` (LangGraph's
        saver setup) runs on a connection inside the same lock."""
        with psycopg.connect(self.url, **_connect_kwargs()) as conn:
            # One process at a time (concurrent CREATE ... IF NOT EXISTS can still collide).
            # Polled, not waited for: a session blocked in pg_advisory_lock keeps a transaction
            # open, and the holder's CREATE INDEX CONCURRENTLY (LangGraph's migrations) waits
            # for every open transaction, so two services starting together deadlocked.
            deadline = time.monotonic() + timeout_s
            while not conn.execute(
                "SELECT pg_try_advisory_lock(hashtext('catena_py_agent schema')) AS locked"
            ).fetchone()["locked"]:
                if time.monotonic() > deadline:
                    raise TimeoutError("another process holds the schema lock")
                time.sleep(0.05)
            try:
                for statement in _DDL:
                    conn.execute(statement)
                migrate(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('catena_py_agent schema'))")
        self.pool.open(wait=True, timeout=timeout_s)

    def close(self) -> None:
        self.pool.close()

    def claim(self, run_id: str, record: TaskRecord) -> bool:
        """Saves the task of a new run; False when the run id is taken."""
        with self.pool.connection() as conn:
            cur = conn.execute(
                "INSERT INTO runs (run_id, task) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (run_id, json.dumps(record.to_json())),
            )
            return cur.rowcount == 1

    def task(self, run_id: str) -> TaskRecord | None:
        """The task of `run_id`, or None for an unknown run."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT task FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        return None if row is None else TaskRecord.from_json(row["task"])

    def last_sequence(self, run_id: str) -> int:
        """The sequence number of the run's last logged event (0 before the first)."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT coalesce(max(sequence), 0) AS last FROM events WHERE run_id = %s",
                (run_id,),
            ).fetchone()
        return int(row["last"])

    def replay(self, run_id: str, from_sequence: int) -> list[agent_pb2.RunTaskResponse]:
        """The events of `run_id` with sequence >= `from_sequence`, in order."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT event FROM events WHERE run_id = %s AND sequence >= %s ORDER BY sequence",
                (run_id, from_sequence),
            ).fetchall()
        return [agent_pb2.RunTaskResponse.FromString(bytes(r["event"])) for r in rows]

    def last_terminal(self, run_id: str) -> agent_pb2.RunTaskResponse | None:
        """The last final answer or error the run emitted."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT event FROM events WHERE run_id = %s AND kind IN ('final_answer', 'error') "
                "ORDER BY sequence DESC LIMIT 1",
                (run_id,),
            ).fetchone()
        return None if row is None else agent_pb2.RunTaskResponse.FromString(bytes(row["event"]))


class Busy(Exception):
    """Another call is advancing the run."""


class Journal:
    """The events of one call that advances a run: numbered on from the run's log, each
    written to the log and then handed to `out`, the call's queue. Holds the run's lock.

    Both the agent's thread and the call's thread record events; after the call's last event
    (or `close`) nothing more is recorded: `record` raises `Cancelled`, which stops the agent.
    """

    def __init__(self, store: RunStore, run_id: str, out: "queue.Queue[agent_pb2.RunTaskResponse]"):
        self.run_id = run_id
        self.out = out
        self.usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        self._lock = threading.Lock()
        self._closed = False
        self._step = 0
        self._conn = psycopg.connect(store.url, **_connect_kwargs())
        try:
            key = f"catena_py_agent run {run_id}"
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS locked", (key,)
            ).fetchone()
            if not row["locked"]:
                raise Busy(f"another call is advancing run `{run_id}`")
            row = self._conn.execute(
                "SELECT coalesce(max(sequence), 0) AS last FROM events WHERE run_id = %s",
                (run_id,),
            ).fetchone()
            self.sequence = int(row["last"])
        except BaseException:
            self._conn.close()
            raise

    def release(self) -> None:
        """Closes the journal's connection (and with it the run's lock)."""
        with self._lock:
            self._closed = True
        self._conn.close()

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def close(self) -> None:
        """Records nothing more (the client went away)."""
        with self._lock:
            self._closed = True

    def record(self, kind: str, value: Any, call_id: str | None = None) -> None:
        """Logs and sends one event: `value` for the `RunTaskResponse` field `kind`."""
        with self._lock:
            if self._closed:
                raise Cancelled()
            message = agent_pb2.RunTaskResponse(
                sequence=self.sequence + 1, run_id=self.run_id, **{kind: value}
            )
            self._conn.execute(
                "INSERT INTO events (run_id, sequence, kind, call_id, event) "
                "VALUES (%s, %s, %s, %s, %s)",
                (self.run_id, message.sequence, kind, call_id, message.SerializeToString()),
            )
            self.sequence = message.sequence
            if kind in TERMINAL:
                self._closed = True
            self.out.put(message)

    def finish(self, kind: str, value: Any) -> bool:
        """Records the call's last event unless it has one already (False then)."""
        try:
            self.record(kind, value)
        except Cancelled:
            return False
        return True

    def step(self, step: int) -> None:
        """A model turn began (said once per step and call)."""
        if step == self._step:
            return
        self._step = step
        self.record(
            "step_started", agent_pb2.StepStarted(step=step, usage=agent_pb2.Usage(**self.usage))
        )

    def text(self, text: str) -> None:
        self.record("text_delta", agent_pb2.TextDelta(text=text))

    def call(self, call_id: str) -> CallJournal:
        """What the run's log says about tool call `call_id`."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, event FROM events WHERE run_id = %s AND call_id = %s "
                "AND kind IN ('tool_call', 'tool_result') ORDER BY sequence",
                (self.run_id, call_id),
            ).fetchall()
        out = CallJournal()
        for row in rows:
            out.started = True
            if row["kind"] == "tool_result":
                result = agent_pb2.RunTaskResponse.FromString(bytes(row["event"])).tool_result
                out.result = (result.content, result.is_error)
        return out
