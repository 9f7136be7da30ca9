#!/usr/bin/env bash
# Builds the static release binaries and puts them where Ansible and the collection expect them:
# the module binaries in plugins/modules/__bin__/ (where the action plugins look), the relay in roles/relay/files/ (the relay role installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
  --manifest-path rust/Cargo.toml --target "$target" -p autoheal-module -p autoheal-relay
release="rust/target/$target/release"
install -D -m 0755 "$release/autoheal-server" plugins/modules/__bin__/server_linux_x86_64
install -D -m 0755 "$release/autoheal-server-info" plugins/modules/__bin__/server_info_linux_x86_64
install -D -m 0755 "$release/autoheal-relay" roles/relay/files/autoheal-relay_linux_x86_64
