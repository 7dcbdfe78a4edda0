#!/usr/bin/env bash
# The chat, end to end on this machine: a local DynamoDB (dynalite) with the connections table,
# the three handlers behind HTTP (lambda-host.mjs), and Herald configured by
# `herald import-aws template.yaml`, serving wss:// with @connections on the same listener so
# the handlers' https://{domainName}/{stage} callbacks reach it.
#
#   ./run.sh                    wss://127.0.0.1:8443, Ctrl-C stops everything
#   CHAT_PORT=9443 ./run.sh     other ports: CHAT_PORT, CHAT_LAMBDA_PORT, CHAT_DYNAMO_PORT;
#                               HERALD_BIN names the binary (default ../../build/release/herald)
#
# Prints "aws-chat: ready ..." once every part answers. Then, for example:
#   npx wscat -c wss://127.0.0.1:8443 --ca "$RUN_DIR/cert.pem"
#   > {"action":"sendmessage","data":"hello"}
set -euo pipefail
cd "$(dirname "$0")"

herald=${HERALD_BIN:-../../build/release/herald}
unset HERALD_BIN  # Herald refuses HERALD_* variables that are not settings
PORT=${CHAT_PORT:-8443}
LAMBDA_PORT=${CHAT_LAMBDA_PORT:-3000}
DYNAMO_PORT=${CHAT_DYNAMO_PORT:-8000}
RUN_DIR=${RUN_DIR:-$(mktemp -d)}
if [ ! -x "$herald" ]; then
  echo "aws-chat: no herald binary at $herald: build it first (../../scripts/run or cmake --build --preset release)" >&2
  exit 1
fi
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error

# What the handlers' AWS SDK clients read: any credentials work with dynalite; Herald checks
# the same pair as its SigV4 key (admin.sigv4), as API Gateway checks IAM.
export AWS_REGION=${AWS_REGION:-eu-west-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-HERALDCHATEXAMPLE}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-chat-example-secret-0123456789abcdef}
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMO_PORT
export TABLE_NAME=chat-connections
export LAMBDA_PORT

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {  # PID URL [curl options...]: until URL answers, up to 20 s, while PID runs
  local pid=$1 url=$2; shift 2
  for _ in $(seq 200); do
    curl -s -o /dev/null "$@" "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "aws-chat: the process serving $url exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "aws-chat: $url did not answer" >&2
  exit 1
}

# A certificate for wss:// and https:// on 127.0.0.1; the handlers trust it (NODE_EXTRA_CA_CERTS).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$RUN_DIR/key.pem" -out "$RUN_DIR/cert.pem" 2>/dev/null

node node_modules/.bin/dynalite --port "$DYNAMO_PORT" --host 127.0.0.1 --createTableMs 0 --deleteTableMs 0 & pids+=($!)
wait_for $! "http://127.0.0.1:$DYNAMO_PORT"
node create-table.mjs

# The API as AWS knows it, turned into a Herald configuration (routes, stage, integrations).
"$herald" import-aws template.yaml --placeholder "http://127.0.0.1:$LAMBDA_PORT" \
  --output "$RUN_DIR/herald.json"

NODE_EXTRA_CA_CERTS="$RUN_DIR/cert.pem" node lambda-host.mjs & pids+=($!)
wait_for $! "http://127.0.0.1:$LAMBDA_PORT/"

# What differs from AWS is only where things are: the listener, its certificate, the host
# handlers call back, and the key they sign with.
HERALD_LISTEN=127.0.0.1:$PORT \
HERALD_TLS_MODE=required \
HERALD_TLS_CERT_FILE="$RUN_DIR/cert.pem" \
HERALD_TLS_KEY_FILE="$RUN_DIR/key.pem" \
HERALD_ROUTING_DOMAIN_NAME=127.0.0.1:$PORT \
HERALD_ADMIN_CLIENT_LISTENER_CONNECTIONS=true \
HERALD_ADMIN_SIGV4_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
HERALD_ADMIN_SIGV4_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
HERALD_ADMIN_LISTEN=127.0.0.1:0 \
  "$herald" --config "$RUN_DIR/herald.json" & pids+=($!)
wait_for $! "https://127.0.0.1:$PORT/readyz" --cacert "$RUN_DIR/cert.pem" --fail

echo "aws-chat: ready: wss://127.0.0.1:$PORT (stage Prod), CA $RUN_DIR/cert.pem, table $TABLE_NAME on $AWS_ENDPOINT_URL_DYNAMODB"
# Until one part stops (or Ctrl-C): then everything stops.
wait -n
