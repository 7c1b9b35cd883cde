#!/usr/bin/env bash
# Release builds of the five Lambda bootstraps with cargo-lambda, arm64 as deployed. The aarch64
# standard library comes from rustup's own server, which is not among the registries this kind of
# machine is promised; when it cannot be had, build x86_64 and say so rather than fail.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="$here/.venv/bin:$PATH"
command -v cargo-lambda >/dev/null || { echo "cargo-lambda missing: run 'make tools' first" >&2; exit 1; }

if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
   || rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  arch=--arm64
else
  echo "NOTE: the aarch64 target could not be installed here; building x86_64 instead" >&2
  arch=--x86-64
fi

functions=(oauth webhook settings drafts sync)
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done
cargo lambda build --release "$arch" "${bins[@]}"
for f in "${functions[@]}"; do
  printf '%-9s %s bytes\n' "$f" "$(stat -c %s "target/lambda/$f/bootstrap")"
done
