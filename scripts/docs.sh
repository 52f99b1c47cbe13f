#!/usr/bin/env bash
# Builds the guides in docs/ as a book (mdBook) into target/book, installing mdBook once
# (from crates.io, pinned, into ${CATENA_TOOLS_DIR:-~/.cache/catena/tools}) when it is missing.
# mdBook fails on a broken SUMMARY.md or a missing chapter; the guides' programs themselves
# are compiled and run as doctests by `cargo test` (catena/src/lib.rs, examples/gateway).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="0.5.4"
tools="${CATENA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/catena/tools}"
mdbook="$tools/bin/mdbook"
if ! { [ -x "$mdbook" ] && "$mdbook" --version | grep -q "v$version"; }; then
    echo "installing mdBook $version into $tools" >&2
    # The test command lints the workspace with clippy as a rustc wrapper; mdBook is not ours.
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS -u CARGO_TARGET_DIR \
        cargo install mdbook --version "$version" --locked --no-default-features --root "$tools" --quiet
fi
"$mdbook" build "$root/docs"
test -s "$root/target/book/index.html"
test -s "$root/target/book/guides/rag-local.html"
