# shellcheck shell=bash
# Checks of an ansible-playbook run's PLAY RECAP, shared by the targets that assert check, real, check, real
# (changed, changed, not changed, not changed). A recap without the expected line is a failure, never
# "unchanged": a count that cannot be read is not zero.

# recap_changed HOST LOG: prints HOST's changed= count; fails when LOG has no recap line for HOST.
recap_changed() {
  local host=$1 log=$2 changed
  changed=$(sed -n "s/^$host *: .*changed=\([0-9][0-9]*\).*/\1/p" <<<"$log")
  if [[ -z $changed ]]; then
    echo "no 'changed=' count for $host in the play recap" >&2
    return 1
  fi
  echo "$changed"
}

# recap_total_changed LOG: prints the sum of every host's changed= count; fails when LOG has no recap line.
recap_total_changed() {
  local log=$1
  grep -q ' : ok=[0-9]*  *changed=[0-9]' <<<"$log" || { echo "no 'changed=' count in the play recap" >&2; return 1; }
  awk '/ : ok=[0-9]+ +changed=[0-9]+/ { sub(/.*changed=/, ""); sum += $1 } END { print sum }' <<<"$log"
}

# expect_changes EXPECT COUNT: whether COUNT agrees with EXPECT (changed: more than 0; unchanged: 0).
expect_changes() {
  case $1 in
    changed) (($2 > 0)) ;;
    unchanged) (($2 == 0)) ;;
    *) echo "expect_changes: EXPECT must be changed or unchanged, not '$1'" >&2; return 2 ;;
  esac
}

# check_recap EXPECT HOST LOG WHAT: prints "ok: WHAT: changed=N", or LOG and a FAIL line and fails, when the
# recap has no count for HOST or the count disagrees with EXPECT.
check_recap() {
  local expect=$1 host=$2 log=$3 what=$4 changed
  if ! changed=$(recap_changed "$host" "$log"); then
    echo "$log"; echo "FAIL: $what: no changed= count for $host in the play recap"; return 1
  fi
  if ! expect_changes "$expect" "$changed"; then
    echo "$log"; echo "FAIL: $what: expected $expect, got changed=$changed"; return 1
  fi
  echo "ok: $what: changed=$changed"
}
