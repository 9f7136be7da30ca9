#!/usr/bin/env bash
# The collection as a user gets it: `ansible-galaxy collection build`, then `collection install` into an
# empty collections path, then ansible-doc and the playbooks autoheal.haproxy.remediate and
# autoheal.haproxy.restore_all from that install against a real HAProxy 2.6 (the setup_haproxy lab).
#   - the tarball holds the module binaries and the relay binary, executable, and no Rust sources;
#   - ansible-doc shows the module docs and lists both modules;
#   - remediate drains app/web2 (live and in the file); restore_all brings it back, file byte-identical.
set -euo pipefail
cd "$(dirname "$0")"
: "${ANSIBLE_COLLECTIONS_PATH:?must point at a collections dir holding autoheal.haproxy}"
source_tree="${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/autoheal/haproxy"
lab_py="$PWD/../setup_haproxy/files/haproxy_lab.py"
work=$(mktemp -d)
lab="$work/lab"
trap 'python3 "$lab_py" stop "$lab" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

ansible-galaxy collection build "$source_tree" --output-path "$work/dist" >/dev/null 2>"$work/build-warnings"
[[ ! -s "$work/build-warnings" ]] || fail "ansible-galaxy collection build warns: $(cat "$work/build-warnings")"
tarball=$(echo "$work"/dist/autoheal-haproxy-*.tar.gz)
[[ -f $tarball ]] || fail "no tarball was built"
tar -tvzf "$tarball" >"$work/listing"
for member in plugins/modules/__bin__/server_linux_x86_64 plugins/modules/__bin__/server_info_linux_x86_64 \
  roles/relay/files/autoheal-relay_linux_x86_64; do
  grep -Eq "^-rwxr-xr-x .* $member\$" "$work/listing" || fail "$member missing from the tarball or not 0755"
done
! grep -Eq ' (rust|scripts|bench|\.ci)/' "$work/listing" || fail "developer files leaked into the tarball"
echo "ok: tarball $(basename "$tarball") holds the binaries, executable, and no sources"

# Install into an empty path, and use only that from here on.
export ANSIBLE_COLLECTIONS_PATH="$work/installed"
ansible-galaxy collection install "$tarball" -p "$ANSIBLE_COLLECTIONS_PATH" >/dev/null
installed="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/autoheal/haproxy"
[[ -x "$installed/plugins/modules/__bin__/server_linux_x86_64" ]] || fail "install lost the module binary's mode"
ansible-doc autoheal.haproxy.server 2>"$work/doc-warnings" | grep -q 'min_active' ||
  fail "ansible-doc autoheal.haproxy.server shows no options"
ansible-doc -l autoheal.haproxy 2>>"$work/doc-warnings" >"$work/doc-list"
# The binaries (plugins/modules/__bin__/) must not be read as module sources: no warning about them.
[[ ! -s "$work/doc-warnings" ]] || fail "ansible-doc warns: $(cat "$work/doc-warnings")"
! grep -q '_linux_' "$work/doc-list" || fail "ansible-doc -l lists a binary as a module"
grep -q '^autoheal.haproxy.server ' "$work/doc-list" || fail "ansible-doc -l does not list the server module"
grep -q '^autoheal.haproxy.server_info ' "$work/doc-list" || fail "ansible-doc -l does not list server_info"
echo "ok: installed; ansible-doc shows and lists the modules"

python3 "$lab_py" start "$lab" ../setup_haproxy/files/haproxy.cfg.in >"$work/lab.json"
cfg="$lab/haproxy.cfg"
cp "$cfg" "$work/original.cfg"
# shellcheck source=../setup_haproxy/files/lab.sh
source ../setup_haproxy/files/lab.sh
lab_inventory "$work/inventory"

actions='{"autoheal_actions": [{"backend": "app", "server": "web2", "state": "drain",
  "reason": {"alert": "AutohealNodeCpuBusy", "fingerprint": "7a7ba11", "status": "firing"}}]}'
ansible-playbook -i "$work/inventory" autoheal.haproxy.remediate -e "$actions" >"$work/remediate.log" 2>&1 ||
  { cat "$work/remediate.log"; fail "remediate from the installed tarball failed"; }
[[ $(live app/web2) == drain* ]] || fail "web2 is not drained live: $(live app/web2)"
grep -Eq '^\s*server web2 .*weight 0' "$cfg" || fail "the file does not say weight 0 for web2"
! cmp -s "$cfg" "$work/original.cfg" || fail "remediate did not change the file"
ls "$lab"/haproxy.cfg.*~ >/dev/null 2>&1 || fail "no backup file next to the config"
echo "ok: remediate (installed collection) drained app/web2 live and in the file, with a backup"

ansible-playbook -i "$work/inventory" autoheal.haproxy.restore_all >"$work/restore.log" 2>&1 ||
  { cat "$work/restore.log"; fail "restore_all from the installed tarball failed"; }
[[ $(live app/web2) == "ready w20" ]] || fail "web2 is not back live: $(live app/web2)"
cmp -s "$cfg" "$work/original.cfg" || fail "after restore_all the file differs from the original"
echo "ok: restore_all (installed collection) brought app/web2 back; the file is byte-identical"
