"""Prints the Markdown table of Catena's side-by-side benchmarks (benches/compare/README.md).

    python3 table.py RESULTS.jsonl [SKIPPED.txt]

RESULTS.jsonl holds one JSON object per line ({"workload", "impl", "value", "unit", "wall_s",
"cpu_s", "note"}); lines that are not JSON objects are ignored. SKIPPED.txt (optional) holds the
runners' `SKIP <workload> <impl>: <reason>` lines. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys

WORKLOADS = [
    "split_recursive_chars",
    "split_recursive_tokens",
    "count_tokens_cl100k",
    "search_single",
    "search_single_int8",
    "search_batch",
    "chain_invoke",
    "gateway_rag_10k",
    "gateway_rag_100k",
    "embed_minilm",
    "decode_smollm2",
]
IMPLS = [
    "catena", "langchain-py", "langchain-js", "numpy", "tiktoken-py", "js-tiktoken", "text-splitter-rs",
    "tiktoken-rs", "sentence-transformers", "llama-cpp",
]
# The LangChain Python column of a workload: LangChain itself, else what LangChain Python calls
# for it (its token counting is tiktoken's, its HuggingFaceEmbeddings are sentence-transformers,
# its LlamaCpp model is llama-cpp-python).
PY_REFS = ["langchain-py", "tiktoken-py", "sentence-transformers", "llama-cpp"]
LOWER_IS_BETTER = {"µs p50", "s"}


def fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ratio(catena: float, other: float, unit: str) -> str:
    """How many times better Catena is than `other` (>1: Catena is better)."""
    if catena <= 0 or other <= 0:
        return "—"
    r = other / catena if unit in LOWER_IS_BETTER else catena / other
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def load(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and {"workload", "impl", "value", "unit"} <= r.keys() and r["value"] is not None:
                rows.append(r)
    return rows


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    skipped = []
    if len(sys.argv) > 2:
        try:
            with open(sys.argv[2], encoding="utf-8") as f:
                skipped = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            pass

    if not rows:
        print("No results.")
        for s in skipped:
            print(f"- skipped: {s.removeprefix('SKIP ')}")
        return

    # The last record of a (workload, impl) wins (a rerun appended to the file).
    by = {}
    for r in rows:
        by[(r["workload"], r["impl"])] = r
    workloads = [w for w in WORKLOADS if any(k[0] == w for k in by)]
    workloads += sorted({k[0] for k in by} - set(workloads))
    impls = [i for i in IMPLS if any(k[1] == i for k in by)]
    impls += sorted({k[1] for k in by} - set(impls))

    head = ["workload", "unit"] + impls + ["Catena CPU s", "Catena vs best peer", "Catena vs LangChain Py"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    footnote = False
    for w in workloads:
        recs = {i: by[(w, i)] for i in impls if (w, i) in by}
        unit = next(iter(recs.values()))["unit"]
        cells = [f"`{w}`", unit]
        for i in impls:
            r = recs.get(i)
            cells.append(fmt(float(r["value"])) if r else "—")
        cat = recs.get("catena")
        peers = {i: float(r["value"]) for i, r in recs.items() if i != "catena" and r["unit"] == unit}
        if cat:
            cv = float(cat["value"])
            cells.append(f"{float(cat.get('cpu_s', 0)):.2f}")
            if peers:
                best = min(peers.values()) if unit in LOWER_IS_BETTER else max(peers.values())
                cells.append(ratio(cv, best, unit))
            else:
                cells.append("—")
            ref = next((i for i in PY_REFS if i in peers), None)
            if ref:
                mark = "" if ref == "langchain-py" else " †"
                footnote |= bool(mark)
                cells.append(ratio(cv, peers[ref], unit) + mark)
            else:
                cells.append("—")
        else:
            cells += ["—", "—", "—"]
        print("| " + " | ".join(cells) + " |")

    print()
    print("Higher is better for MB/s, queries/s, req/s, passages/s and tokens/s, lower for µs and s. The")
    print("ratios are how many times better Catena is (>1: Catena is better): Catena / peer for throughput,")
    print("peer / Catena for latency.")
    if footnote:
        print("† What LangChain Python calls for that workload: tiktoken for tokens, sentence-transformers for")
        print("  HuggingFaceEmbeddings, llama-cpp-python for LlamaCpp.")

    counts = {}
    for (w, i), r in by.items():
        if w == "count_tokens_cl100k":
            m = re.search(r"tokens=(\d+)|(\d+) tokens", r.get("note", ""))
            counts[i] = int(m.group(1) or m.group(2)) if m else None
    if counts:
        known = {i: n for i, n in counts.items() if n is not None}
        if known and len(set(known.values())) == 1:
            msg = f"all count {next(iter(known.values()))} tokens"
            if len(known) < len(counts):
                msg += f" (no count in the note of: {', '.join(sorted(set(counts) - set(known)))})"
            print(f"\ncl100k token counts: {msg}.")
        else:
            print(f"\ncl100k token counts DIFFER: {', '.join(f'{i}={n}' for i, n in sorted(counts.items()))}.")

    print("\nNotes:\n")
    for w in workloads:
        for i in impls:
            r = by.get((w, i))
            if r:
                extra = f"; wall {float(r.get('wall_s', 0)):.2f} s, CPU {float(r.get('cpu_s', 0)):.2f} s"
                print(f"- `{w}` / {i}: {r.get('note', '')}{extra}")
    if skipped:
        print("\nSkipped:\n")
        for s in skipped:
            print(f"- {s.removeprefix('SKIP ')}")


if __name__ == "__main__":
    main()
