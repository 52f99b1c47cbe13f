"""Python peers for Catena's side-by-side benchmarks (benches/compare/README.md).

    bench.py gen-corpus --jsonl F --out F [--copies N]   (standard library only)
    bench.py gen-vectors --out-dir D                      (numpy)
    bench.py count-tokens --corpus F                      (prints tiktoken's cl100k count)
    bench.py run --corpus F --vectors F --queries F [--quick]

`run` prints one JSON object per line on stdout (the protocol in the README); everything else
goes to stderr. A peer that cannot run (a missing package) is skipped with a line
`SKIP <workload> <impl>: <reason>` on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from importlib import metadata

DIM = 384
N_VECTORS = 100_000
N_QUERIES = 200
N_CENTRES = 1_000
NOISE = 0.1
SEED = 7
WARM_BYTES = 100_000


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def skip(workload: str, impl: str, reason: str) -> None:
    log(f"SKIP {workload} {impl}: {reason}")


def emit(workload: str, impl: str, value: float, unit: str, wall: float, cpu: float, note: str) -> None:
    print(
        json.dumps(
            {
                "workload": workload,
                "impl": impl,
                "value": value,
                "unit": unit,
                "wall_s": wall,
                "cpu_s": cpu,
                "note": note,
            },
            ensure_ascii=False,
        ),
        flush=True,
    )


def version(dist: str) -> str:
    try:
        return f"{dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return f"{dist} ?"


def measure(min_s: float, fn):
    """Runs fn once, then again until min_s has passed: (runs, wall s, cpu s, last result)."""
    c0, t0 = time.process_time(), time.perf_counter()
    runs = 0
    while True:
        out = fn()
        runs += 1
        wall = time.perf_counter() - t0
        if wall >= min_s:
            return runs, wall, time.process_time() - c0, out


def prefix(text: str, n_bytes: int) -> str:
    return text.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")


# ---------------------------------------------------------------------------------------------
# Inputs


def gen_corpus(args: argparse.Namespace) -> None:
    texts = []
    with open(args.jsonl, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                texts.append(json.loads(line)["text"])
    one = "\n\n".join(texts)
    corpus = "\n\n".join([one] * args.copies)
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write(corpus)
    log(f"corpus: {len(texts)} sections x {args.copies} = {len(corpus.encode('utf-8'))} bytes -> {args.out}")


def unit_rows(x):
    import numpy as np

    return x / np.linalg.norm(x, axis=1, keepdims=True)


def gen_vectors(args: argparse.Namespace) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    centres = unit_rows(rng.standard_normal((N_CENTRES, DIM)))

    def sample(n: int):
        ids = rng.integers(0, N_CENTRES, size=n)
        return unit_rows(centres[ids] + NOISE * rng.standard_normal((n, DIM))).astype("<f4")

    vectors = sample(N_VECTORS)
    queries = sample(N_QUERIES)
    os.makedirs(args.out_dir, exist_ok=True)
    vectors.tofile(os.path.join(args.out_dir, "vectors.f32"))
    queries.tofile(os.path.join(args.out_dir, "queries.f32"))
    log(f"vectors: {vectors.shape}, queries: {queries.shape} (seed {SEED}) -> {args.out_dir}")


def load_f32(path: str):
    import numpy as np

    return np.fromfile(path, dtype="<f4").reshape(-1, DIM)


def count_tokens(args: argparse.Namespace) -> None:
    import tiktoken

    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    print(len(tiktoken.get_encoding("cl100k_base").encode_ordinary(text)))


# ---------------------------------------------------------------------------------------------
# Workloads


def bench_splitters(corpus: str, min_s: float) -> None:
    mb = len(corpus.encode("utf-8")) / 1e6
    warm = prefix(corpus, WARM_BYTES)
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError as e:
        skip("split_recursive_chars", "langchain-py", str(e))
        skip("split_recursive_tokens", "langchain-py", str(e))
        return
    ver = version("langchain-text-splitters")

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    splitter.split_text(warm)
    runs, wall, cpu, chunks = measure(min_s, lambda: splitter.split_text(corpus))
    emit(
        "split_recursive_chars",
        "langchain-py",
        mb * runs / wall,
        "MB/s",
        wall,
        cpu,
        f"{ver} RecursiveCharacterTextSplitter(1000, 200).split_text; chunks={len(chunks)}; {runs} runs",
    )

    try:
        splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
            encoding_name="cl100k_base", chunk_size=256, chunk_overlap=32
        )
        splitter.split_text(warm)
    except Exception as e:  # noqa: BLE001 - tiktoken missing or its ranks not downloadable
        skip("split_recursive_tokens", "langchain-py", f"{type(e).__name__}: {e}")
        return
    runs, wall, cpu, chunks = measure(min_s, lambda: splitter.split_text(corpus))
    emit(
        "split_recursive_tokens",
        "langchain-py",
        mb * runs / wall,
        "MB/s",
        wall,
        cpu,
        f"{ver} from_tiktoken_encoder(cl100k_base, 256, 32); chunks={len(chunks)}; {runs} runs",
    )


def bench_count_tokens(corpus: str, min_s: float) -> None:
    mb = len(corpus.encode("utf-8")) / 1e6
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
    except Exception as e:  # noqa: BLE001
        skip("count_tokens_cl100k", "tiktoken-py", f"{type(e).__name__}: {e}")
        return
    enc.encode_ordinary(prefix(corpus, WARM_BYTES))
    runs, wall, cpu, n = measure(min_s, lambda: len(enc.encode_ordinary(corpus)))
    emit(
        "count_tokens_cl100k",
        "tiktoken-py",
        mb * runs / wall,
        "MB/s",
        wall,
        cpu,
        f"{version('tiktoken')} encode_ordinary (the reference count); tokens={n}; {runs} runs",
    )


def blas_note() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            return ", ".join(f"{p['internal_api']} {p.get('version')} {p['num_threads']} threads" for p in blas)
    except ImportError:
        pass
    return "BLAS threads unknown (threadpoolctl missing)"


def top10_single(matrix, q):
    import numpy as np

    scores = matrix @ (q / np.linalg.norm(q))
    top = np.argpartition(-scores, 10)[:10]
    return top[np.argsort(-scores[top])]


def bench_search(vectors_path: str, queries_path: str, quick: bool, min_s: float) -> None:
    try:
        import numpy as np
    except ImportError as e:
        for w, i in [("search_single", "numpy"), ("search_batch", "numpy"), ("search_single", "langchain-py")]:
            skip(w, i, str(e))
        return
    raw = load_f32(vectors_path)
    queries = load_f32(queries_path)
    # Rows are normalised once, at load (an index build), so a search is a dot product.
    matrix = np.ascontiguousarray(unit_rows(raw).astype(np.float32))
    nq = len(queries)
    blas = blas_note()
    ver = version("numpy")

    # search_single: one query at a time.
    for q in queries[:5]:
        top10_single(matrix, q)
    c0, t0 = time.process_time(), time.perf_counter()
    numpy_top = [top10_single(matrix, q) for q in queries]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    emit(
        "search_single",
        "numpy",
        nq / wall,
        "queries/s",
        wall,
        cpu,
        f"{ver} M @ q + argpartition, f32, rows pre-normalised; {nq} queries; {blas}",
    )

    # search_batch: all queries as one GEMM.
    def batch():
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        scores = qn @ matrix.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)

    batch()
    runs, wall, cpu, _ = measure(min_s, batch)
    emit(
        "search_batch",
        "numpy",
        nq * runs / wall,
        "queries/s",
        wall,
        cpu,
        f"{ver} Q @ M.T (GEMM) + argpartition, f32; {nq} queries x {runs} runs; {blas}",
    )

    # LangChain's InMemoryVectorStore: vectors stored as Python lists (what Embeddings return).
    try:
        from langchain_core.documents import Document
        from langchain_core.embeddings import Embeddings
        from langchain_core.vectorstores import InMemoryVectorStore
    except ImportError as e:
        skip("search_single", "langchain-py", str(e))
        return

    rows = raw.tolist()

    class Precomputed(Embeddings):
        def embed_documents(self, texts):
            return [rows[int(t)] for t in texts]

        def embed_query(self, text):
            raise NotImplementedError

    t_build = time.perf_counter()
    store = InMemoryVectorStore(embedding=Precomputed())
    ids = [str(i) for i in range(len(rows))]
    store.add_documents([Document(page_content=i) for i in ids], ids=ids)
    log(f"langchain-py InMemoryVectorStore: {len(ids)} documents added in {time.perf_counter() - t_build:.1f}s")
    n = 3 if quick else 5
    qlists = queries.tolist()
    store.similarity_search_by_vector(qlists[0], k=10)  # warm-up
    c0, t0 = time.process_time(), time.perf_counter()
    results = [store.similarity_search_by_vector(q, k=10) for q in qlists[:n]]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    agree = all([d.page_content for d in r] == [str(i) for i in numpy_top[j]] for j, r in enumerate(results))
    emit(
        "search_single",
        "langchain-py",
        n / wall,
        "queries/s",
        wall,
        cpu,
        f"{version('langchain-core')} InMemoryVectorStore.similarity_search_by_vector, only {n} of {nq} queries timed "
        f"(slow); top-10 {'agree' if agree else 'DISAGREE'} with numpy; {blas}",
    )


def bench_chain(quick: bool) -> None:
    try:
        from langchain_core.language_models import FakeListChatModel
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
    except ImportError as e:
        skip("chain_invoke", "langchain-py", str(e))
        return
    chain = (
        ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{question}")])
        | FakeListChatModel(responses=["ok"])
        | StrOutputParser()
    )
    warm, n = (200, 2_000) if quick else (1_000, 20_000)
    for i in range(warm):
        chain.invoke({"question": f"q{i}"})
    lat = []
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        s = time.perf_counter_ns()
        out = chain.invoke({"question": f"q{i}"})
        lat.append(time.perf_counter_ns() - s)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert out == "ok", out
    lat.sort()
    p50, p99 = statistics.median(lat) / 1e3, lat[int(len(lat) * 0.99)] / 1e3
    emit(
        "chain_invoke",
        "langchain-py",
        p50,
        "µs p50",
        wall,
        cpu,
        f"{version('langchain-core')} ChatPromptTemplate | FakeListChatModel | StrOutputParser, invoke; "
        f"{n} invokes after {warm} warm-up; mean {statistics.fmean(lat) / 1e3:.0f} µs, p99 {p99:.0f} µs",
    )


def run(args: argparse.Namespace) -> None:
    min_s = 1.0 if args.quick else 3.0
    log(f"python peers: {sys.version.split()[0]}")
    with open(args.corpus, encoding="utf-8") as f:
        corpus = f.read()
    bench_splitters(corpus, min_s)
    bench_count_tokens(corpus, min_s)
    bench_search(args.vectors, args.queries, args.quick, min_s)
    bench_chain(args.quick)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-corpus")
    g.add_argument("--jsonl", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--copies", type=int, default=1)
    g.set_defaults(fn=gen_corpus)
    v = sub.add_parser("gen-vectors")
    v.add_argument("--out-dir", required=True)
    v.set_defaults(fn=gen_vectors)
    c = sub.add_parser("count-tokens")
    c.add_argument("--corpus", required=True)
    c.set_defaults(fn=count_tokens)
    r = sub.add_parser("run")
    r.add_argument("--corpus", required=True)
    r.add_argument("--vectors", required=True)
    r.add_argument("--queries", required=True)
    r.add_argument("--quick", action="store_true")
    r.set_defaults(fn=run)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
