#!/usr/bin/env bash
# Checks the gRPC contract in agents/proto with buf: `buf lint` (STANDARD rules) and
# `buf breaking` (FILE rules) against the previous commit.
#
#   scripts/buf.sh            # install buf if needed, lint, then check for breaking changes
#   scripts/buf.sh lint       # lint only
#   scripts/buf.sh breaking   # breaking-change check only
#   scripts/buf.sh install    # install buf only; prints its path
#
# buf comes from npm (@bufbuild/buf, version pinned below; the package ships the binary)
# into $CATENA_BUF_DIR (default <repo>/.catena/buf, git-ignored). Installing is idempotent
# and skipped when the pinned version is already there, so after the first run the script
# works offline. Runs from any directory, never reads stdin.
#
# The breaking check compares the working tree's agents/proto with agents/proto at
# $CATENA_BUF_AGAINST (default HEAD~1, the previous commit). It is skipped, with a message,
# when that commit does not exist (first commit, shallow clone) or has no agents/proto yet.
set -euo pipefail

BUF_VERSION="1.75.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROTO_DIR="agents/proto"
BUF_DIR="${CATENA_BUF_DIR:-$ROOT/.catena/buf}"
BUF="$BUF_DIR/node_modules/.bin/buf"
AGAINST="${CATENA_BUF_AGAINST:-HEAD~1}"

log() { printf 'buf.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_buf() {
    if [ -x "$BUF" ] && [ "$("$BUF" --version 2>/dev/null)" = "$BUF_VERSION" ]; then
        return
    fi
    command -v npm >/dev/null 2>&1 || die "npm is needed to install buf ($BUF_VERSION)"
    log "installing @bufbuild/buf@$BUF_VERSION into $BUF_DIR (npm)"
    mkdir -p "$BUF_DIR"
    npm install --prefix "$BUF_DIR" --no-save --no-audit --no-fund --loglevel=error \
        "@bufbuild/buf@$BUF_VERSION" </dev/null >&2 || die "npm install @bufbuild/buf@$BUF_VERSION failed"
    [ -x "$BUF" ] || die "buf was installed but $BUF is missing"
    local got
    got="$("$BUF" --version)" || die "$BUF does not run"
    [ "$got" = "$BUF_VERSION" ] || die "installed buf is $got, expected $BUF_VERSION"
}

lint() {
    log "buf lint $PROTO_DIR"
    (cd "$ROOT" && "$BUF" lint "$PROTO_DIR")
    log "lint passed"
}

breaking() {
    cd "$ROOT"
    if ! git rev-parse --git-dir >/dev/null 2>&1; then
        log "skipping the breaking-change check: $ROOT is not a git repository"
        return
    fi
    local commit
    if ! commit="$(git rev-parse --verify --quiet "$AGAINST^{commit}")"; then
        log "skipping the breaking-change check: no commit $AGAINST to compare with (first commit or shallow clone)"
        return
    fi
    if ! git cat-file -e "$commit:$PROTO_DIR" 2>/dev/null; then
        log "skipping the breaking-change check: $PROTO_DIR does not exist in $AGAINST ($commit)"
        return
    fi
    log "buf breaking $PROTO_DIR against $AGAINST ($commit)"
    "$BUF" breaking "$PROTO_DIR" --against ".git#ref=$commit,subdir=$PROTO_DIR"
    log "no breaking changes"
}

case "${1:-all}" in
    all) ensure_buf; lint; breaking ;;
    lint) ensure_buf; lint ;;
    breaking) ensure_buf; breaking ;;
    install) ensure_buf; printf '%s\n' "$BUF" ;;
    *) die "usage: $0 [all|lint|breaking|install]" ;;
esac
