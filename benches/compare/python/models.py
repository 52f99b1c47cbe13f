"""The local-model peers of benches/compare: sentence-transformers on CPU PyTorch and
llama-cpp-python (llama.cpp built from its PyPI sdist), on the same model files and inputs as
Catena's `embed_minilm` and `decode_smollm2` workloads (benches/examples/compare.rs).

    python3 models.py gen-passages --corpus corpus.txt --out passages.jsonl [--count 512]
    python models.py run --passages passages.jsonl --embed-model DIR --chat-model FILE.gguf \
        [--catena-embeddings FILE] [--quick]

`gen-passages` needs only the standard library; `run` needs the packages of
requirements-models.txt (run.sh installs them into .catena/bench/models-venv). Results are JSON
lines like the other runners' ({"workload", "impl", "value", "unit", "wall_s", "cpu_s",
"note"}); a peer that cannot be imported prints a `SKIP <workload> <impl>: <reason>` line on
stderr. Both peers use as many threads as the process may run on (its CPU affinity), as run.sh
gives Catena (CANDLE_NUM_THREADS and RAYON_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# The same prompt as DECODE_PROMPT in benches/examples/compare.rs.
DECODE_PROMPT = "Write a long, detailed essay about the history of relational databases."
MAX_TOKENS = 128
WORDS_PER_PASSAGE = 90


def emit(workload: str, impl: str, value: float, unit: str, wall: float, cpu: float, note: str) -> None:
    print(json.dumps({"workload": workload, "impl": impl, "value": value, "unit": unit,
                      "wall_s": wall, "cpu_s": cpu, "note": note}, ensure_ascii=False), flush=True)


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def measure_for(work, min_seconds: float):
    """Runs `work` once, then again until `min_seconds` have passed (as compare.rs does)."""
    c0, w0 = cpu(), time.perf_counter()
    runs = 0
    while True:
        out = work()
        runs += 1
        wall = time.perf_counter() - w0
        if wall >= min_seconds:
            return out, runs, wall, cpu() - c0


def gen_passages(args: argparse.Namespace) -> None:
    """Passages of 90 words (about 130 MiniLM tokens: well under its 256) from the corpus."""
    words = open(args.corpus, encoding="utf-8").read().split()
    passages = [" ".join(words[i:i + WORDS_PER_PASSAGE])
                for i in range(0, WORDS_PER_PASSAGE * args.count, WORDS_PER_PASSAGE)]
    passages = [p for p in passages if p]
    if len(passages) < args.count:
        sys.exit(f"the corpus has too few words for {args.count} passages")
    with open(args.out, "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")


def embed(args: argparse.Namespace, threads: int, min_seconds: float) -> None:
    try:
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        print(f"SKIP embed_minilm sentence-transformers: cannot import ({e})", file=sys.stderr)
        return
    torch.set_num_threads(threads)
    texts = [json.loads(line) for line in open(args.passages, encoding="utf-8") if line.strip()]
    model = SentenceTransformer(args.embed_model, device="cpu")
    with torch.inference_mode():
        model.encode(texts[:32], batch_size=32)
        vectors, runs, wall, used = measure_for(
            lambda: model.encode(texts, batch_size=32, convert_to_numpy=True), min_seconds)
    note = (f"{len(texts)} passages, batch 32, {runs} runs, torch {torch.__version__} CPU, "
            f"{threads} threads")
    if args.catena_embeddings and os.path.exists(args.catena_embeddings):
        theirs = np.fromfile(args.catena_embeddings, dtype="<f4")
        if theirs.size == vectors.size:
            theirs = theirs.reshape(vectors.shape)
            cos = (theirs * vectors).sum(1) / (np.linalg.norm(theirs, axis=1) * np.linalg.norm(vectors, axis=1))
            note += f"; Catena's vectors: min cosine {cos.min():.6f}"
        else:
            note += "; Catena's vectors have another shape"
    emit("embed_minilm", "sentence-transformers", runs * len(texts) / wall, "passages/s", wall, used, note)


def decode(args: argparse.Namespace, threads: int, min_seconds: float) -> None:
    try:
        import llama_cpp
    except ImportError as e:
        print(f"SKIP decode_smollm2 llama-cpp: cannot import ({e})", file=sys.stderr)
        return
    llm = llama_cpp.Llama(model_path=args.chat_model, n_ctx=2048, n_threads=threads,
                          n_threads_batch=threads, seed=0, verbose=False)
    messages = [{"role": "user", "content": DECODE_PROMPT}]

    def once():
        start = time.perf_counter()
        first, pieces = None, 0
        for chunk in llm.create_chat_completion(messages=messages, max_tokens=MAX_TOKENS,
                                                temperature=0.0, stream=True):
            delta = chunk["choices"][0].get("delta", {})
            if delta.get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - start
        total = time.perf_counter() - start
        return first or total, total - (first or total), pieces

    once()
    totals = {"ttft": 0.0, "after": 0.0, "tokens": 0, "runs": 0}

    def run_once():
        first, rest, pieces = once()
        totals["ttft"] += first
        totals["after"] += rest
        totals["tokens"] += max(pieces - 1, 0)
        totals["runs"] += 1

    _, _, wall, used = measure_for(run_once, min_seconds)
    runs = totals["runs"]
    note = (f"{totals['tokens'] / runs + 1:.0f} output tokens per run (max {MAX_TOKENS}, counted as "
            f"streamed pieces), greedy; first token {1000 * totals['ttft'] / runs:.1f} ms; {runs} runs, "
            f"{threads} threads, llama-cpp-python {llama_cpp.__version__}, the file's Q4_1 weights")
    emit("decode_smollm2", "llama-cpp", totals["tokens"] / totals["after"], "tokens/s", wall, used, note)


def run(args: argparse.Namespace) -> None:
    threads = len(os.sched_getaffinity(0)) or 1
    min_seconds = 1.0 if args.quick else 3.0
    embed(args, threads, min_seconds)
    decode(args, threads, min_seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-passages")
    g.add_argument("--corpus", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--count", type=int, default=512)
    r = sub.add_parser("run")
    r.add_argument("--passages", required=True)
    r.add_argument("--embed-model", required=True)
    r.add_argument("--chat-model", required=True)
    r.add_argument("--catena-embeddings")
    r.add_argument("--quick", action="store_true")
    args = p.parse_args()
    {"gen-passages": gen_passages, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
