#!/usr/bin/env bash
# Runs a command with moto's server (DynamoDB + Secrets Manager) on a free loopback port, pointing
# the AWS SDK at it through its standard variables, and stops the server afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python="$here/.venv/bin/python"
[ -x "$here/.venv/bin/moto_server" ] || { echo "moto_server missing: run 'make tools' first" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp)
# One request at a time, so conditional writes are isolated as in DynamoDB (see the script).
"$python" "$here/scripts/moto-server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat "$log" >&2; echo "moto_server did not start" >&2; exit 1; fi
  sleep 0.1
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export MOTO_ENDPOINT="$AWS_ENDPOINT_URL"
"$@"
