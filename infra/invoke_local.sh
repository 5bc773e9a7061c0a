#!/usr/bin/env bash
# Both Lambda handlers run locally through `sls invoke local`, against a local store:
#   api /health → api /train (TRAIN_QUEUE=none: the job waits in the store) → train on an SQS
#   event naming that job → api /setup → api /predict.
# Needs node_modules (npm ci) and the project's Python as `python3.12` on PATH (`make invoke-demo` does both).
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${MODEL_STORE_URI:-file://.model-store}

# Locally there is no credentials secret: ALLOW_UNAUTHENTICATED=true (the api function fails closed in
# Lambda without credentials). No --param is needed: only package/deploy insist on credentials, and
# invoke local leaves out the stack's CREDENTIALS_SECRET and MODEL_SIGNING_KMS_KEY
# (infra/deploy-guard-plugin.js), so versions are signed with the local store's key file.
invoke() {  # invoke <function> <event file> [extra sls args]: prints the handler's JSON reply
  local fn=$1 event=$2
  shift 2
  npx sls invoke local -f "$fn" --path "$event" -e MODEL_STORE_URI="$STORE" \
    -e ALLOW_UNAUTHENTICATED=true "$@" | python3 -c '
import json, sys
out = sys.stdin.read()
print(json.dumps(json.loads(out[out.index("\n{") + 1 :] if not out.startswith("{") else out)))'
}
body() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["body"])'; }

echo "health:  $(invoke api events/http_health.json | body)"
job=$(invoke api events/http_train.json -e TRAIN_QUEUE=none | body | python3 -c 'import json, sys; print(json.load(sys.stdin)["job"])')
echo "train:   job $job queued in $STORE"
event=$(mktemp)
trap 'rm -f "$event"' EXIT
sed "s/JOB_ID/$job/" events/sqs_train.json > "$event"
echo "worker:  $(invoke train "$event")"
echo "setup:   $(invoke api events/http_setup.json | body)"
echo "predict: $(invoke api events/http_predict.json | body)"
