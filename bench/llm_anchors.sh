#!/usr/bin/env bash
# ombud as a column of the shared anchor benchmark (../shared/bench/run_anchors.sh), beside
# direct calls, LiteLLM and Portkey, against the same fake upstream.
#
#   bench/llm_anchors.sh                      # every gateway, the harness's defaults (~10 min)
#   DELAYS_MS=0 DURATION=10 bench/llm_anchors.sh
#
# ombud runs one worker with the default llm.chat chain: authentication (API key, verified keys
# cached for 5 s), rate limits (IP, key, tenant, model, tokens), concurrency caps, Rego
# authorization and policy before/after, input and output guards, a budget hold and settle, and
# the usage record + chained audit event committed before the answer. The response cache is off
# (the load generator repeats one request). Extra arguments go to bench/llm_server.py serve.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
WORK="$(mktemp -d /tmp/ombud-anchor-XXXXXX)"
KEY="$("$ROOT/.venv/bin/python" "$ROOT/bench/llm_server.py" prepare "$WORK" | tail -1)"
EXTRA="${*:-}"
export OMBUD_CMD="exec '$ROOT/.venv/bin/python' '$ROOT/bench/llm_server.py' serve '$WORK' --port \$OMBUD_PORT --upstream \$FAKE_UPSTREAM_BASE $EXTRA"
export OMBUD_HEALTH=/healthz OMBUD_AUTH="$KEY" OMBUD_MODEL=fake-model
export GATEWAYS="${GATEWAYS:-direct litellm portkey ombud}"
exec "$HARNESS/run_anchors.sh"
