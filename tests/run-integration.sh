#!/usr/bin/env bash
# Runs the Ansible integration targets under tests/integration/targets/ on this machine, with no containers.
#
#   tests/run-integration.sh [TARGET...]     # default: every target
#   AUTOHEAL_VENV=DIR tests/run-integration.sh ...   # with another ansible-core (default: the checkout's .venv)
#
# The collection (with the binaries that scripts/build.sh put in plugins/modules/__bin__/) is copied to a temporary
# ansible_collections/autoheal/haproxy tree, which ANSIBLE_COLLECTIONS_PATH points at. Each target follows the
# ansible-test conventions:
#   - a target with runme.sh is run as `./runme.sh` from its directory (OUTPUT_DIR set, venv on PATH);
#   - any other target is a role, run by a generated playbook against localhost (connection local);
#   - targets named setup_* or prepare_* are helpers for other targets, not run on their own;
#   - an `aliases` file containing `disabled` or `unsupported` skips the target (reported as SKIP, never as
#     PASS).
# Prints PASS/FAIL/SKIP per target, then a last line `N passed, M failed`; exits 1 if anything failed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${AUTOHEAL_VENV:-$repo/.venv}"
export PATH="$venv/bin:$PATH"

work="$(mktemp -d "${TMPDIR:-/tmp}/autoheal-integration.XXXXXX")"
keep_work="${AUTOHEAL_KEEP_WORK:-}"
lab_script="$repo/tests/integration/targets/setup_haproxy/files/haproxy_lab.py"
# Targets create their temporary files (HAProxy labs included) under $work/tmp. A lab whose target was killed
# before its cleanup is stopped here after each target, on exit, and by the lab's own watchdog if this
# script itself is killed (AUTOHEAL_LAB_OWNER_PID).
stop_leftover_labs() {
  local lab
  for lab in "$work"/tmp/autoheal-lab.*/; do
    [[ -d "$lab/pids" ]] && python3 "$lab_script" stop "$lab" >/dev/null
  done
  return 0
}
cleanup() {
  stop_leftover_labs
  [[ -n "$keep_work" ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Like /tmp: targets may run things as other users (mktemp -d made $work 0700).
mkdir -p "$work/tmp"
chmod 0755 "$work"
chmod 1777 "$work/tmp"
export AUTOHEAL_LAB_OWNER_PID=$$

collection="$work/collections/ansible_collections/autoheal/haproxy"
mkdir -p "$collection"
# A real copy (ansible-test and the collection loader refuse symlinked trees); Rust sources and local
# environments are not part of the collection.
tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./rust --exclude=./tests/output \
  --exclude=./build --exclude=./tmp --exclude='*.tar.gz' -cf - . | tar -C "$collection" -xf -

targets_dir="$collection/tests/integration/targets"
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
export ANSIBLE_ROLES_PATH="$targets_dir"
export ANSIBLE_LOCAL_TEMP="$work/ansible-local"
export ANSIBLE_REMOTE_TEMP="$work/ansible-remote"
export ANSIBLE_RETRY_FILES_ENABLED=false
export ANSIBLE_NOCOLOR=1
export ANSIBLE_DEPRECATION_WARNINGS=true
export ANSIBLE_PYTHON_INTERPRETER="$venv/bin/python"

cat >"$work/inventory.ini" <<EOF
[testgroup]
testhost ansible_connection=local ansible_python_interpreter=$venv/bin/python
EOF

if (($#)); then
  selected=("$@")
else
  selected=()
  for dir in "$targets_dir"/*/; do
    selected+=("$(basename "$dir")")
  done
fi

passed=0 failed=0 skipped=0
failed_names=()
for name in "${selected[@]}"; do
  dir="$targets_dir/$name"
  if [[ ! -d "$dir" ]]; then
    echo "FAIL $name (no such target)"
    failed=$((failed + 1)) failed_names+=("$name")
    continue
  fi
  case "$name" in setup_* | prepare_*) (($#)) || continue ;; esac
  skip_alias="$(sed 's/#.*//' "$dir/aliases" 2>/dev/null | grep -Eox '[[:space:]]*(disabled|unsupported)[[:space:]]*' |
    head -1 | tr -d '[:space:]' || true)"
  if [[ -n "$skip_alias" ]]; then
    echo "SKIP $name (aliases: $skip_alias)"
    skipped=$((skipped + 1))
    continue
  fi

  output_dir="$work/output/$name"
  log="$work/logs/$name.log"
  mkdir -p "$output_dir" "$(dirname "$log")"
  start=$SECONDS
  if [[ -f "$dir/runme.sh" ]]; then
    run=(bash ./runme.sh)
  else
    playbook="$work/playbooks/$name.yml"
    mkdir -p "$(dirname "$playbook")"
    cat >"$playbook" <<EOF
---
- name: Integration target $name
  hosts: testhost
  gather_facts: false
  roles:
    - role: $name
EOF
    run=(ansible-playbook -i "$work/inventory.ini" -e "output_dir=$output_dir" "$playbook")
  fi
  if (cd "$dir" && TMPDIR="$work/tmp" OUTPUT_DIR="$output_dir" ANSIBLE_INVENTORY="$work/inventory.ini" "${run[@]}") \
    >"$log" 2>&1; then
    echo "PASS $name ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    echo "FAIL $name ($((SECONDS - start)) s); last lines of $log:"
    tail -n 80 "$log" | sed 's/^/    /'
    failed=$((failed + 1)) failed_names+=("$name")
    keep_work=1
  fi
  stop_leftover_labs
done

((skipped == 0)) || echo "($skipped skipped: see SKIP lines above)"
((failed == 0)) || echo "failed: ${failed_names[*]}${keep_work:+ (work directory kept: $work)}"
echo "$passed passed, $failed failed"
((failed == 0))
