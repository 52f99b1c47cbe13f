#!/usr/bin/env python3
"""Records LangChain's chunks for the inputs in this folder, for `core/tests/splitter_langchain.rs`.

Usage (from the repository root):

    python3 -m venv /tmp/lc-venv
    /tmp/lc-venv/bin/pip install langchain-text-splitters tiktoken
    /tmp/lc-venv/bin/python core/tests/data/splitter/generate.py

It writes `expected.json` next to itself. Python's tiktoken downloads its encoding files; on a
machine without network access, point `TIKTOKEN_ASSETS` at a folder holding `cl100k_base.tiktoken`
and `o200k_base.tiktoken` (tiktoken-rs ships them in its crate's `assets/`) and the script seeds
tiktoken's cache from there. tiktoken checks the files' SHA-256 against the published hashes, so
the result is the same as with downloaded files. Never edit that file by hand: when Catena disagrees
with it, the Rust port is what needs fixing.
"""

import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import tempfile

from langchain_text_splitters import (
    CharacterTextSplitter,
    Language,
    MarkdownHeaderTextSplitter,
    RecursiveCharacterTextSplitter,
    TokenTextSplitter,
)

HERE = pathlib.Path(__file__).resolve().parent

ALL = [
    "regex_readme.md",
    "node_maintaining_icu.md",
    "vendor_tiktoken.rs",
    "textwrap.py",
    "unicode_howto.rst",
    "cjk_prose.txt",
]
MARKDOWN = ["regex_readme.md", "node_maintaining_icu.md"]
HEADERS = [["#", "Header 1"], ["##", "Header 2"], ["###", "Header 3"]]

# (case name, splitter kind, constructor arguments, inputs). The arguments use the Python
# names; the Rust test maps them onto the builders.
CASES = [
    ("recursive_1000_200", "recursive", {"chunk_size": 1000, "chunk_overlap": 200}, ALL),
    ("recursive_300_50", "recursive", {"chunk_size": 300, "chunk_overlap": 50}, ALL),
    ("recursive_100_0", "recursive", {"chunk_size": 100, "chunk_overlap": 0},
     ["cjk_prose.txt", "textwrap.py", "regex_readme.md"]),
    ("recursive_keep_end_no_strip", "recursive",
     {"chunk_size": 200, "chunk_overlap": 40, "keep_separator": "end", "strip_whitespace": False},
     ["cjk_prose.txt", "node_maintaining_icu.md", "unicode_howto.rst"]),
    ("recursive_discard_separator", "recursive",
     {"chunk_size": 250, "chunk_overlap": 30, "keep_separator": False},
     ["regex_readme.md", "textwrap.py"]),
    ("language_rust", "recursive", {"language": "rust", "chunk_size": 500, "chunk_overlap": 50},
     ["vendor_tiktoken.rs"]),
    ("language_python", "recursive",
     {"language": "python", "chunk_size": 500, "chunk_overlap": 50}, ["textwrap.py"]),
    ("language_markdown", "recursive",
     {"language": "markdown", "chunk_size": 400, "chunk_overlap": 40}, MARKDOWN),
    ("character_default", "character", {"chunk_size": 1000, "chunk_overlap": 200},
     ["unicode_howto.rst", "node_maintaining_icu.md"]),
    ("character_newline", "character",
     {"separator": "\n", "chunk_size": 200, "chunk_overlap": 20},
     ["textwrap.py", "cjk_prose.txt"]),
    ("character_regex_sentences", "character",
     {"separator": r"[.。]\s*", "is_separator_regex": True, "keep_separator": "end",
      "chunk_size": 300, "chunk_overlap": 0},
     ["unicode_howto.rst", "cjk_prose.txt"]),
    ("markdown_headers", "markdown_headers", {"headers_to_split_on": HEADERS}, MARKDOWN),
    ("markdown_headers_keep_headers", "markdown_headers",
     {"headers_to_split_on": HEADERS, "strip_headers": False}, MARKDOWN),
    ("markdown_headers_each_line", "markdown_headers",
     {"headers_to_split_on": HEADERS[:2], "return_each_line": True}, MARKDOWN),
    ("tiktoken_cl100k_100_20", "recursive_tiktoken",
     {"encoding_name": "cl100k_base", "chunk_size": 100, "chunk_overlap": 20},
     ["regex_readme.md", "cjk_prose.txt", "vendor_tiktoken.rs"]),
    ("tiktoken_o200k_200_0", "recursive_tiktoken",
     {"encoding_name": "o200k_base", "chunk_size": 200, "chunk_overlap": 0},
     ["unicode_howto.rst", "cjk_prose.txt"]),
    ("token_cl100k_50_10", "token",
     {"encoding_name": "cl100k_base", "chunk_size": 50, "chunk_overlap": 10},
     ["cjk_prose.txt", "regex_readme.md"]),
    ("token_o200k_64_0", "token",
     {"encoding_name": "o200k_base", "chunk_size": 64, "chunk_overlap": 0},
     ["unicode_howto.rst", "cjk_prose.txt"]),
    ("start_index_300_50", "start_index",
     {"chunk_size": 300, "chunk_overlap": 50, "add_start_index": True},
     ["unicode_howto.rst", "cjk_prose.txt"]),
]


def seed_tiktoken_cache():
    assets = os.environ.get("TIKTOKEN_ASSETS")
    if not assets:
        return
    cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
    for name in ["cl100k_base", "o200k_base"]:
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        key = hashlib.sha1(url.encode()).hexdigest()
        shutil.copy(pathlib.Path(assets) / f"{name}.tiktoken", pathlib.Path(cache) / key)
    os.environ["TIKTOKEN_CACHE_DIR"] = cache


def run(kind, args, text):
    args = dict(args)
    if kind == "recursive":
        language = args.pop("language", None)
        if language is not None:
            splitter = RecursiveCharacterTextSplitter.from_language(Language(language), **args)
        else:
            splitter = RecursiveCharacterTextSplitter(**args)
        return splitter.split_text(text)
    if kind == "character":
        return CharacterTextSplitter(**args).split_text(text)
    if kind == "recursive_tiktoken":
        return RecursiveCharacterTextSplitter.from_tiktoken_encoder(**args).split_text(text)
    if kind == "token":
        return TokenTextSplitter(**args).split_text(text)
    if kind == "markdown_headers":
        headers = [tuple(h) for h in args.pop("headers_to_split_on")]
        docs = MarkdownHeaderTextSplitter(headers, **args).split_text(text)
        return [{"content": d.page_content, "metadata": d.metadata} for d in docs]
    if kind == "start_index":
        docs = RecursiveCharacterTextSplitter(**args).create_documents([text])
        return [{"content": d.page_content, "start_index": d.metadata["start_index"]} for d in docs]
    raise ValueError(kind)


def main():
    seed_tiktoken_cache()
    cases = []
    for name, kind, args, inputs in CASES:
        for input_name in inputs:
            text = (HERE / input_name).read_text(encoding="utf-8")
            cases.append({
                "name": name,
                "kind": kind,
                "args": args,
                "input": input_name,
                "expected": run(kind, args, text),
            })
    out = {
        "generator": "core/tests/data/splitter/generate.py",
        "langchain_text_splitters": importlib.metadata.version("langchain-text-splitters"),
        "langchain_core": importlib.metadata.version("langchain-core"),
        "tiktoken": importlib.metadata.version("tiktoken"),
        "python": platform.python_version(),
        "cases": cases,
    }
    path = HERE / "expected.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
