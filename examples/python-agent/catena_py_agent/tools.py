"""The agent's tools, as LangChain tools: a safe calculator and a search over the task's
context documents. Names and output formats match the Rust agent service
(examples/agent-service), so that a gateway sees the same events from either.

`http_get` is a TEST FIXTURE: a tool with a side effect outside the process, offered only in the
scripted-model mode and only for the one loopback address the tests name
(`CATENA_PY_AGENT_TEST_HTTP_ALLOW`), so that they can count how often a durable run's tool ran.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import ipaddress
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, tool

SEARCH_DOCUMENTS = "search_documents"
CALCULATOR = "calculator"
HTTP_GET = "http_get"
HTTP_ALLOW_ENV = "CATENA_PY_AGENT_TEST_HTTP_ALLOW"

# Tools a durable run may run again when the process died while they ran: they have no effect
# outside the task. Any other tool interrupted that way is not repeated (the model is told).
IDEMPOTENT_TOOLS = frozenset({SEARCH_DOCUMENTS, CALCULATOR})

# ---------------------------------------------------------------------------------------------
# Calculator: arithmetic over an AST whitelist (never eval), with limits on length, depth and
# magnitude. `^` is power, as in the Rust calculator.

MAX_EXPRESSION_CHARS = 500
MAX_DEPTH = 64
MAX_MAGNITUDE = 1e300
MAX_EXPONENT = 10_000


class CalcError(ValueError):
    """An expression the calculator refuses; the model sees the message."""


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitXor: operator.pow,  # `^` is power
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "sqrt": math.sqrt,
    "abs": abs,
    "ln": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> float:
    """Evaluates an arithmetic expression: numbers, + - * / // % ^ (or **), parentheses, the
    constants pi and e, and a few functions (sqrt, abs, ln, log10, sin, cos, tan, exp, floor,
    ceil, round). Raises CalcError for anything else."""
    text = expression.strip()
    if not text:
        raise CalcError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalcError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise CalcError(f"cannot parse the expression: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise CalcError("cannot parse the expression") from None
    value = float(_eval(tree.body, 0))
    if math.isnan(value) or math.isinf(value) or abs(value) > MAX_MAGNITUDE:
        raise CalcError("the result is not a finite number")
    return value


def _eval(node: ast.AST, depth: int) -> float:
    if depth > MAX_DEPTH:
        raise CalcError("the expression is nested too deeply")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        if isinstance(node.op, (ast.Pow, ast.BitXor)) and abs(right) > MAX_EXPONENT:
            raise CalcError(f"exponents are limited to ±{MAX_EXPONENT}")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalcError("division by zero")
        try:
            result = _BINARY[type(node.op)](left, right)
        except OverflowError:
            raise CalcError("the result is too large") from None
        if isinstance(result, complex):
            raise CalcError("the result is not a real number")
        if abs(result) > MAX_MAGNITUDE:
            raise CalcError("the result is too large")
        return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        arg = _eval(node.args[0], depth + 1)
        try:
            return float(_FUNCTIONS[node.func.id](arg))
        except (ValueError, OverflowError) as e:
            raise CalcError(f"{node.func.id}({arg}): {e}") from None
    raise CalcError(f"unsupported syntax: {ast.dump(node)[:60]}")


@tool(CALCULATOR)
def calculator(expression: str) -> str:
    """Evaluates an arithmetic expression: + - * / % ^, parentheses, pi, e, and sqrt, abs, ln,
    log10, sin, cos, tan, exp, floor, ceil, round. Returns the number."""
    return repr(evaluate(expression))


# ---------------------------------------------------------------------------------------------
# Search over the task's context documents.

_WORD = re.compile(r"[\w]+", re.UNICODE)
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from how i in is it of on or the to what when where "
    "which who why with".split()
)


def _terms(text: str) -> list[str]:
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOPWORDS]


@dataclass
class ContextDocument:
    """A document the caller sent with the task."""

    content: str
    id: str = ""
    source: str = ""
    score: float = 0.0


class ContextRetriever(BaseRetriever):
    """Keyword search over the task's context documents: each document is scored by the query
    terms it contains (term frequency, damped by document length); documents sharing no term
    are never returned. Every document it returns is recorded as a source of the answer."""

    documents: list[ContextDocument]
    k: int = 4
    on_hit: Callable[[int], None] = lambda _i: None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        wanted = set(_terms(query))
        scored = []
        for i, doc in enumerate(self.documents):
            terms = _terms(doc.content)
            if not terms:
                continue
            hits = sum(1 for t in terms if t in wanted)
            distinct = len(wanted.intersection(terms))
            if distinct == 0:
                continue
            scored.append((distinct + hits / (len(terms) ** 0.5), -i, i))
        scored.sort(reverse=True)
        out = []
        for _score, _neg, i in scored[: self.k]:
            self.on_hit(i)
            doc = self.documents[i]
            out.append(
                Document(
                    page_content=doc.content,
                    id=doc.id or None,
                    metadata={"source": doc.source or None, "index": i},
                )
            )
        return out


@dataclass
class SourceRecorder:
    """The context documents (by position) the agent's searches returned, in order."""

    positions: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, i: int) -> None:
        with self._lock:
            if i not in self.positions:
                self.positions.append(i)


def search_tool(retriever: ContextRetriever) -> BaseTool:
    """The `search_documents` tool over `retriever`. Its output is a JSON array of
    `{"content", "source"}` objects, most relevant first (the Rust RetrieverTool's format)."""

    @tool(SEARCH_DOCUMENTS)
    def search_documents(query: str) -> str:
        """Searches the context documents the caller sent with this task and returns the most
        relevant ones, most relevant first."""
        if not query.strip():
            raise ValueError("query must not be empty")
        docs = retriever.invoke(query)
        rows = [{"content": d.page_content, "source": d.metadata.get("source")} for d in docs]
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)

    return search_documents


# ---------------------------------------------------------------------------------------------
# Test fixture: an HTTP GET to one allowed loopback address (a side effect the tests count).

MAX_HTTP_BODY = 64 * 1024


def http_get_tool(allowed: str) -> BaseTool:
    """The `http_get` tool, limited to `http://{allowed}/...`; `allowed` must be a loopback
    HOST:PORT (ValueError otherwise). Proxies from the environment are ignored."""
    host = allowed.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or ":" not in allowed:
        raise ValueError(f"{HTTP_ALLOW_ENV} must be a loopback HOST:PORT, not {allowed!r}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @tool(HTTP_GET)
    def http_get(url: str) -> str:
        """Fetches a URL with HTTP GET and returns the body (test fixture)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.netloc != allowed:
            raise ValueError(f"only http://{allowed}/ may be fetched")
        with opener.open(url, timeout=30) as response:
            return response.read(MAX_HTTP_BODY).decode("utf-8", "replace")

    return http_get
