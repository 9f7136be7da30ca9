#!/usr/bin/env bash
# The relay's intake: distinct one-alert Alertmanager webhooks, each journaled, against a baseline relay binary
# in the same run. Each relay runs the dry-run executor with `synchronous = "full"` on a fresh journal; the two
# binaries take turns, `--rounds` times each. Prints one row per run and the candidate/baseline ratio of the
# medians: alerts/s, p50 and p99 latency, peak RSS (VmHWM of the relay process) and the relay's CPU time per
# 1,000 alerts (user + system; on a machine shared with other work it varies less than alerts/s).
#
#   bench/intake.sh --baseline OLD_RELAY [--candidate NEW_RELAY] [--seconds 60] [--connections 16] [--rounds 2]
#
# The candidate defaults to this checkout's release build; the load generator is this checkout's
# `loadgen` example (built here if missing). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline="" candidate="rust/target/release/autoheal-relay" seconds=60 connections=16 rounds=2
while (($#)); do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --candidate) candidate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 --baseline BIN [--candidate BIN] [--seconds N] [--connections N] [--rounds N]" >&2; exit 2 ;;
  esac
done
[[ -x $baseline ]] || { echo "intake: --baseline must name a relay binary" >&2; exit 2; }
cargo build --quiet --release --manifest-path rust/Cargo.toml -p autoheal-relay --example loadgen --bin autoheal-relay
[[ -x $candidate ]] || { echo "intake: no candidate binary at $candidate" >&2; exit 2; }
loadgen=rust/target/release/examples/loadgen

work=$(mktemp -d)
relay_pid=""
cleanup() {
  [[ -n $relay_pid ]] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run_one NAME BINARY: one measured run; appends "NAME rate p50 p99 rss_kb cpu_ms_per_1k" to $work/rows.
run_one() {
  local name=$1 binary=$2 dir port line rate p50 p99 rss ticks ok cpu
  dir=$(mktemp -d "$work/run.XXXX")
  port=$(free_port)
  (umask 077 && echo "bench-token" >"$dir/token")
  # Only keys every relay version knows, so the baseline reads the same file.
  cat >"$dir/relay.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
[auth]
bearer_token_file = "$dir/token"
[journal]
path = "$dir/journal.db"
synchronous = "full"
[[rules]]
name = "bench"
match = { alertname = "BenchAlert" }
action = "drain"
[executor]
kind = "dry-run"
[log]
level = "warn"
TOML
  "$binary" serve --config "$dir/relay.toml" >"$dir/relay.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
    sleep 0.1
  done
  curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" || { cat "$dir/relay.log" >&2; exit 1; }
  line=$("$loadgen" "http://127.0.0.1:$port/hooks/alertmanager" "$dir/token" "$connections" "$seconds")
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/$relay_pid/status")
  # utime + stime, in clock ticks (fields 14 and 15; the command name in field 2 has no spaces here).
  ticks=$(awk '{print $14 + $15}' "/proc/$relay_pid/stat")
  kill "$relay_pid" && wait "$relay_pid" 2>/dev/null || true
  relay_pid=""
  rate=$(sed -n 's/.*: \([0-9]*\) req\/s.*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50 \([^,]*\),.*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99 \([^,]*\),.*/\1/p' <<<"$line")
  [[ $line == *" 0 errors "* ]] || { echo "intake: $name had errors: $line" >&2; exit 1; }
  ok=$(sed -n 's/^\([0-9]*\) ok.*/\1/p' <<<"$line")
  cpu=$(python3 -c "print(round($ticks * 1000 / $(getconf CLK_TCK) / max($ok, 1) * 1000, 1))")
  echo "$name $rate $p50 $p99 $rss $cpu" >>"$work/rows"
  printf '%-10s %10s alerts/s  p50 %-12s p99 %-12s peak RSS %6d KiB  CPU %6s ms/1k alerts\n' "$name" "$rate" "$p50" "$p99" "$rss" "$cpu"
}

echo "intake: $connections connections, ${seconds}s per run, $rounds rounds, synchronous = full, dry-run executor"
for _ in $(seq "$rounds"); do
  run_one baseline "$baseline"
  run_one candidate "$candidate"
done

python3 - "$work/rows" <<'PY'
import re, statistics, sys

def ms(text):
    value, unit = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", text).groups()
    return float(value) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]

rows = {}
for line in open(sys.argv[1]):
    name, rate, p50, p99, rss, cpu = line.split()
    rows.setdefault(name, []).append((float(rate), ms(p50), ms(p99), int(rss) / 1024, float(cpu)))
med = {name: [statistics.median(col) for col in zip(*runs)] for name, runs in rows.items()}
print()
print("| relay | alerts/s | p50 ms | p99 ms | peak RSS MiB | CPU ms per 1k alerts |")
print("|---|---:|---:|---:|---:|---:|")
for name in ("baseline", "candidate"):
    rate, p50, p99, rss, cpu = med[name]
    print(f"| {name} | {rate:,.0f} | {p50:.2f} | {p99:.1f} | {rss:.1f} | {cpu:.0f} |")
ratio = [c / b for c, b in zip(med["candidate"], med["baseline"])]
print("| candidate/baseline | " + " | ".join(f"{r:.2f}x" for r in ratio) + " |")
print(f"(medians of {len(rows['baseline'])} rounds)")
PY
