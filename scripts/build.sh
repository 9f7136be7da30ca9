#!/usr/bin/env bash
# Builds the static release binaries and puts them where Ansible and the collection expect them.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
  --manifest-path rust/Cargo.toml --target "$target" -p autoheal-module
for bin in server server_info; do
  src="autoheal-${bin//_/-}"
  install -m 0755 "rust/target/$target/release/$src" "plugins/modules/${bin}_linux_x86_64"
done
