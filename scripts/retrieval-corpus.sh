#!/usr/bin/env bash
# Rebuilds benches/data/postgresql-15-docs.jsonl, the retrieval-evaluation corpus, from the
# documentation Debian ships in the postgresql-doc-15 package (fetched with `apt-get
# download`; nothing is installed). Text nobody here wrote, with its own structure: each
# numbered section of the manual becomes one record, and its heading becomes a query whose
# relevant documents are that section's chunks (see docs/retrieval.md).
#
#   bash scripts/retrieval-corpus.sh            # rewrite the vendored corpus
#   bash scripts/retrieval-corpus.sh --check    # rebuild into a temporary file and compare
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/benches/data/postgresql-15-docs.jsonl"
die() { echo "retrieval-corpus.sh: $*" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download postgresql-doc-15 >/dev/null 2>&1 \
    || die "apt-get download postgresql-doc-15 failed (run apt-get update first?)"
dpkg-deb -x postgresql-doc-15_*.deb x
html="$work/x/usr/share/doc/postgresql-doc-15/html"
[ -d "$html" ] || die "no HTML manual in the package"
version="$(dpkg-deb -f postgresql-doc-15_*.deb Version)"

target="$out"
if [ "${1:-}" = "--check" ]; then
    target="$work/corpus.jsonl"
fi
python3 "$root/scripts/retrieval-corpus.py" "$html" "$target"
if [ "${1:-}" = "--check" ]; then
    cmp -s "$target" "$out" || die "the vendored corpus differs from postgresql-doc-15 $version"
    echo "retrieval-corpus.sh: the vendored corpus matches postgresql-doc-15 $version" >&2
else
    echo "retrieval-corpus.sh: wrote $out from postgresql-doc-15 $version" >&2
fi
