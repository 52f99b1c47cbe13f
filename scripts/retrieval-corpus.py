#!/usr/bin/env python3
"""Builds the retrieval-evaluation corpus from the PostgreSQL 15 documentation (HTML).

Usage: retrieval-corpus.py HTML_DIR OUT.jsonl

Reads the user-facing chapters of the manual (tutorial, SQL language, data types,
functions, indexes, full text search, concurrency, performance, administration), splits
each page at its numbered section headings (<h2>/<h3> "5.4.1. Check Constraints"), and
writes one JSON line per section: {"id", "title", "page", "text"}. The heading itself is
not part of the text (the evaluation uses it as the query). Notes, tips and warnings stay
in their section. Sections with under 200 characters of text are dropped; longer ones keep
their first MAX_CHARS characters (cut at a line break), which keeps the corpus at about
1 MB while every section still has several chunks.

Python standard library only; deterministic (pages and sections in sorted order).
"""

import html
import json
import os
import re
import sys

PAGES = re.compile(
    r"^(tutorial|sql-syntax|ddl|dml|queries|datatype|functions|typeconv|indexes|textsearch"
    r"|mvcc|performance-tips|parallel|runtime-config-(query|resource|wal|logging|locks|client)"
    r"|client-authentication|auth-|user-manag|role|backup|continuous-archiving|wal|routine"
    r"|maintenance|monitoring|plpgsql|rules|triggers|event-trigger|xfunc|xaggr|xtypes"
    r"|tablesample|sql-expressions|rowtypes|arrays|rangetypes|domains|json|locale|collation"
    r"|charset|multibyte|storage|limits|planner|using-explain|explicit-locking|transaction-iso"
    r"|applevel)"
)
HEADING = re.compile(r'<h([23]) class="title"[^>]*>(.*?)</h\1>', re.S)
MAX_CHARS = 2400
NUMBERED = re.compile(r"^([0-9]+(\.[0-9]+)+)\.\s+(.*)$", re.S)


def text_of(fragment: str) -> str:
    s = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.S | re.I)
    s = re.sub(r"<div class=\"navfooter\".*", " ", s, flags=re.S)
    s = re.sub(r"</(p|div|pre|li|tr|h[1-6]|dt|dd|table)>|<br\s*/?>", "\n", s, flags=re.I)
    s = re.sub(r"<[^>]+>", "", s)
    s = html.unescape(s)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in s.split("\n")]
    out, blank = [], False
    for line in lines:
        if line:
            out.append(line)
            blank = False
        elif not blank and out:
            out.append("")
            blank = True
    return "\n".join(out).strip()


def sections(name: str, page: str):
    body = page.split('<div class="navheader">', 1)[-1]
    body = body.split('<div class="navfooter">', 1)[0]
    marks = []
    for m in HEADING.finditer(body):
        title = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", m.group(2)))).strip()
        n = NUMBERED.match(title)
        if n:
            marks.append((m.start(), m.end(), n.group(1), n.group(3).strip()))
    for i, (start, end, number, title) in enumerate(marks):
        stop = marks[i + 1][0] if i + 1 < len(marks) else len(body)
        text = text_of(body[end:stop])
        if len(text) > MAX_CHARS:
            cut = text.rfind("\n", 0, MAX_CHARS)
            text = text[: cut if cut > MAX_CHARS // 2 else MAX_CHARS].rstrip()
        if len(text) >= 200:
            yield {"id": f"{name}#{number}", "title": title, "page": name, "text": text}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = sys.argv[1], sys.argv[2]
    names = sorted(f[:-5] for f in os.listdir(src) if f.endswith(".html") and PAGES.match(f))
    count = 0
    with open(out, "w", encoding="utf-8") as fh:
        for name in names:
            with open(os.path.join(src, name + ".html"), encoding="utf-8") as f:
                page = f.read()
            for s in sections(name, page):
                fh.write(json.dumps(s, ensure_ascii=False) + "\n")
                count += 1
    print(f"{count} sections from {len(names)} pages -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
