"""The LangChain Python peer of the gateway load rows (`gateway_rag_10k`) in benches/compare: the
same request as Catena's load target (examples/gateway/examples/load_target.rs) served the way a
LangChain Python user would build it: FastAPI on uvicorn (one process, as the Catena gateway is
one), a bearer key checked in constant time, an `InMemoryVectorStore` holding the same chunks
(the PostgreSQL manual sections split 1000/200, repeated to CHUNKS, one tenant in the metadata)
with a deterministic fake embedding of 384 dimensions, and an LCEL chain retriever (filtered to
the key's tenant) → prompt → a stub chat model that answers after 50 ms → string parser.

    python gateway.py --port 8091 --chunks 10000 [--delay-ms 50]

Prints `langchain gateway on http://127.0.0.1:PORT (N chunks)` on stderr when it accepts
requests. Load it with `wrk -s examples/gateway/load/query.lua http://127.0.0.1:PORT/v1/query`.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import socket
import sys
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import BaseModel, Field
import uvicorn

KEY = "load-test-key"  # the load target's key (examples/gateway/load/query.lua sends it)
TENANT = "load"


class SlowStub(FakeListChatModel):
    """Answers after a fixed delay, like the load target's stub model."""

    delay_s: float = 0.05

    async def _agenerate(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        await asyncio.sleep(self.delay_s)
        return await super()._agenerate(*args, **kwargs)


class Query(BaseModel):
    question: str = Field(min_length=1, max_length=4096)
    k: int = Field(default=4, ge=1, le=20)


def chunks(jsonl: str, count: int) -> list[Document]:
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    texts = []
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            section = json.loads(line)
            texts += splitter.split_text(section.get("text") or section.get("content") or "")
    out = []
    i = 0
    while len(out) < count:
        out.append(Document(page_content=texts[i % len(texts)], metadata={"tenant": TENANT, "n": len(out)}))
        i += 1
    return out


def build(args: argparse.Namespace) -> FastAPI:
    store = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=384))
    docs = chunks(args.corpus, args.chunks)
    for start in range(0, len(docs), 1000):
        store.add_documents(docs[start:start + 1000])
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context only.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ])
    model = SlowStub(responses=["A stub answer."], delay_s=args.delay_ms / 1000)
    app = FastAPI()

    @app.post("/v1/query")
    async def query(body: Query, authorization: str = Header(default="")) -> dict:
        token = authorization.removeprefix("Bearer ")
        if not hmac.compare_digest(token.encode(), KEY.encode()):
            raise HTTPException(status_code=401, detail="unauthorized")
        retriever = store.as_retriever(search_kwargs={
            "k": body.k, "filter": lambda doc: doc.metadata.get("tenant") == TENANT})
        found: list[Document] = []

        def context(docs: list[Document]) -> str:
            found.extend(docs)
            return "\n\n".join(d.page_content for d in docs)

        chain = ({"context": retriever | RunnableLambda(context), "question": RunnablePassthrough()}
                 | prompt | model | StrOutputParser())
        answer = await chain.ainvoke(body.question)
        return {"answer": answer, "sources": [d.metadata for d in found]}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=10_000)
    p.add_argument("--delay-ms", type=int, default=50)
    p.add_argument("--corpus", required=True, help="benches/data/postgresql-15-docs.jsonl")
    args = p.parse_args()
    app = build(args)
    # Bound before the line is printed: a client that reads it can connect at once (the kernel
    # queues connections until uvicorn accepts them).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    print(f"langchain gateway on http://127.0.0.1:{args.port} ({args.chunks} chunks)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
