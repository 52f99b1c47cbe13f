#!/usr/bin/env bash
# The newcomer test: build a fresh crate outside the workspace from the first guide
# (docs/guides/rag-local.md) exactly as a reader would — its Cargo.toml lines and its program,
# copied verbatim, with only the `catena` dependency pointed at this checkout — and run it over
# this repository's docs/. Fails if the guide's program does not build, does not answer with
# sources, or warns that the local models run unoptimised (its profile lines must be enough).
# Needs the model files (scripts/models.sh fetch). Runs from any directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guide="$root/docs/guides/rag-local.md"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
crate="$work/rag-app"
mkdir -p "$crate/src"

# The n-th fenced block (1-based) whose info string starts with $1.
block() {
    awk -v tag="$1" -v want="$2" '
        /^```/ && !inside { inside = 1; n += (index(substr($0, 4), tag) == 1); keep = (index(substr($0, 4), tag) == 1 && n == want); next }
        /^```/ && inside  { inside = 0; keep = 0; next }
        keep { print }
    ' "$guide"
}

deps="$(block toml 1)"
program="$(block rust 1)"
[ -n "$deps" ] && [ -n "$program" ] || { echo "newcomer: no toml or rust block in $guide" >&2; exit 1; }
grep -q '^catena = { version = "0.1"' <<<"$deps" || { echo "newcomer: the guide's catena line changed" >&2; exit 1; }

{
    printf '[package]\nname = "rag-app"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n'
    # The one change from the guide: the facade from this checkout instead of crates.io.
    sed "s|^catena = { version = \"0.1\"|catena = { path = \"$root/catena\"|" <<<"$deps"
    printf '\n[workspace]\n'
} >"$crate/Cargo.toml"
printf '%s\n' "$program" >"$crate/src/main.rs"
cp -R "$root/docs" "$crate/docs"
# The workspace's lock file: the same dependency versions as the tests, no registry surprises.
cp "$root/Cargo.lock" "$crate/Cargo.lock"

echo "newcomer: $(wc -l <"$crate/src/main.rs") lines of program, building $crate" >&2
cd "$crate"
# Sharing the workspace's target directory reuses every dependency built with the same
# features and profile (the numeric crates, optimised by the guide's profile lines).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --quiet
start=$(date +%s)
"$CARGO_TARGET_DIR/debug/rag-app" docs >"$work/out.txt" 2>"$work/err.txt" || {
    cat "$work/out.txt" "$work/err.txt" >&2
    exit 1
}
cat "$work/out.txt"
echo "newcomer: answered in $(($(date +%s) - start)) s (debug build)" >&2
grep -q '^Indexed [1-9][0-9]* chunks from [1-9][0-9]* files\.$' "$work/out.txt" \
    && grep -q '^Answer: .' "$work/out.txt" && grep -q '^  - .*\.md$' "$work/out.txt" \
    || { echo "newcomer: the guide's program printed no answer with sources" >&2; exit 1; }
if grep -q 'compiled without optimisations' "$work/err.txt"; then
    cat "$work/err.txt" >&2
    echo "newcomer: the guide's profile lines did not keep the local models optimised" >&2
    exit 1
fi
