#!/usr/bin/env bash
# Init time of every function binary against a hello-world lambda_runtime binary (same release
# profile, same machine, alternating runs), binary sizes, and the webhook's peak RSS while it answers
# signed deliveries against moto. Native x86_64 builds: the emulator runs them here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rounds=${ROUNDS:-30}
# rustls-native-certs reads the system roots at client construction. Debian keeps every root twice
# (the bundle and a directory of per-certificate files) and reading both costs ~1.4 ms of init here;
# pointing it at the bundle alone measures our code rather than this machine's layout
# (BENCH_DEBIAN_CERTS=1 keeps the machine's setting, for the Debian figure in the README).
# AWS_CA_BUNDLE, set on this kind of machine, makes the SDK load the bundle once more; Lambda does
# not set it.
if [ -z "${BENCH_DEBIAN_CERTS:-}" ]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_DIR=/nonexistent
  unset AWS_CA_BUNDLE
fi
deliveries=${DELIVERIES:-500}
cargo build --release -p hello-lambda -p oauth -p webhook -p settings -p drafts -p sync
cargo build -p flowback-local
bins="$here/target/release"
# Init first, on an otherwise idle machine: no moto, no local stack (init makes no AWS call).
.venv/bin/python bench/lambda_bench.py "$bins" "$rounds"
# The local stack seeds the demo connection (its table, mapping and signing secret) on moto, then
# the benchmark runs the webhook binary against the same moto.
PORT=${BENCH_PORT:-3999} scripts/with-moto.sh bash -c '
  target/debug/flowback-local >/dev/null 2>&1 &
  stack=$!
  trap "kill $stack 2>/dev/null || true" EXIT
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/drafts" -w "" 2>/dev/null && break
    [ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$PORT/drafts")" = "401" ] && break
    sleep 0.2
  done
  sleep 2
  .venv/bin/python bench/lambda_bench.py "'"$bins"'" 0 --rss '"$deliveries"'
'
