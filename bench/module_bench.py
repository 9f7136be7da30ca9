#!/usr/bin/env python3
# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module on a 100,000-server haproxy.cfg against a plain Python script doing the same work.

    bench/module_bench.py [--module PATH] [--rounds N] [--backends B] [--servers S]

Generates the file (B backends x S servers, default 2,000 x 50) in a temp directory, then alternates
drain and enabled on one server, N times each, with:
  - the module binary (`autoheal-server`, validate off, backup off), started the way Ansible starts a
    binary module: one process per call with the path of a JSON args file;
  - `python3 <this file> --baseline ...`: one process per call that takes the directory lock, reads the
    file, hashes it, finds the section and the server line, rewrites the line under a marker comment, hashes
    the result, writes a temp file, fsyncs it, renames it over the original and fsyncs the directory.
Both write the same kind of change, in the same run, on the same file. Prints medians of wall and CPU
time of processes started directly, the ratios, and the peak RSS of each path (from one more round run
through GNU time) beside the file's size.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODULE = os.path.join(REPO, "rust", "target", "release", "autoheal-server")
GNU_TIME = "/usr/bin/time"


def generate(path: str, backends: int, servers: int) -> None:
    """The same layout as the engine's cargo bench: B backends of S `server` lines each."""
    parts = ["global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 5s\n"]
    for b in range(backends):
        parts.append(f"\nbackend be_{b}\n    balance roundrobin\n")
        parts.extend(
            f"    server srv_{b}_{s} 10.{b // 250}.{b % 250}.{s + 1}:8080 check weight 10\n"
            for s in range(servers)
        )
    with open(path, "w", encoding="utf-8") as out:
        out.write("".join(parts))


def baseline(path: str, backend: str, server: str, state: str) -> None:
    """One drain or restore, the way a careful script would do it without a parser."""
    directory = os.path.dirname(path)
    lock = os.open(directory, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(path, "rb") as f:
        data = f.read()
    checksum_before = hashlib.sha256(data).hexdigest()
    text = data.decode("utf-8")
    lines = text.splitlines(keepends=True)
    header = f"backend {backend}"
    in_section = False
    for index, line in enumerate(lines):
        stripped = line.strip()
        words = stripped.split()
        if words and words[0] in ("backend", "listen", "frontend", "defaults", "global"):
            in_section = stripped == header
            continue
        if not in_section or len(words) < 2 or words[0] != "server" or words[1] != server:
            continue
        marker = f"#autoheal drain was: {stripped}"
        if state == "drain" and not lines[index - 1].strip().startswith("#autoheal"):
            indent = line[: len(line) - len(line.lstrip())]
            weighted = [("0" if i > 0 and words[i - 1] == "weight" else w) for i, w in enumerate(words)]
            lines[index] = f"{indent}{' '.join(weighted)}\n"
            lines.insert(index, f"{indent}{marker}\n")
        elif state == "enabled" and lines[index - 1].strip().startswith("#autoheal drain was: "):
            indent = line[: len(line) - len(line.lstrip())]
            original = lines[index - 1].strip()[len("#autoheal drain was: "):]
            lines[index] = f"{indent}{original}\n"
            del lines[index - 1]
        break
    else:
        raise SystemExit(f"no server {server} in backend {backend}")
    new = "".join(lines).encode("utf-8")
    checksum_after = hashlib.sha256(new).hexdigest()
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".bench.")
    with os.fdopen(fd, "wb") as out:
        out.write(new)
        out.flush()
        os.fsync(out.fileno())
    os.rename(temp, path)
    os.fsync(lock)
    os.close(lock)
    print(json.dumps({"changed": checksum_before != checksum_after, "checksum_after": checksum_after}))


def run_timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall time (ms), CPU time (user + system, ms, from wait4) and stdout of one process, started directly."""
    start = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        out = proc.stdout.read()
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = (time.perf_counter() - start) * 1000
        # Reaped here: the context manager's own wait must not wait again.
        code = proc.returncode = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[0]} failed ({code}): {out.decode()} {err.decode()}")
    return elapsed, (usage.ru_utime + usage.ru_stime) * 1000, out.decode()


def peak_rss_kib(argv: list[str], work: str) -> tuple[int, str]:
    """Peak RSS (KiB) and stdout of one process, through GNU time.

    Not from wait4: a child started from this (large) Python process would report the parent's RSS as its
    own, since the kernel counts the memory a process had before exec. Run apart from the timed calls, as
    GNU time's own start (a dynamically linked process) would add a millisecond or two to each.
    """
    report = os.path.join(work, "time.out")
    _, _, out = run_timed([GNU_TIME, "-o", report, "-f", "%M", *argv])
    with open(report, encoding="utf-8") as f:
        return int(f.read().split()[-1]), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", default=DEFAULT_MODULE)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--backends", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=PATH",
                        help="another module binary (say, built from an older commit) timed the same way")
    parser.add_argument("--baseline", nargs=4, metavar=("PATH", "BACKEND", "SERVER", "STATE"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.baseline:
        baseline(*opts.baseline)
        return

    with tempfile.TemporaryDirectory(prefix="autoheal-module-bench.") as work:
        cfg = os.path.join(work, "cfg", "haproxy.cfg")
        os.mkdir(os.path.dirname(cfg))
        generate(cfg, opts.backends, opts.servers)
        size_kib = os.path.getsize(cfg) / 1024
        backend = f"be_{opts.backends // 2}"
        server = f"srv_{opts.backends // 2}_{opts.servers // 2}"

        def module_argv(state: str, check: bool, binary: str = opts.module) -> list[str]:
            args = os.path.join(work, f"args-{state}-{check}.json")
            with open(args, "w", encoding="utf-8") as f:
                json.dump({"path": cfg, "backend": backend, "server": server, "state": state,
                           "validate": "", "backup": False, "_ansible_check_mode": check}, f)
            return [binary, args]

        others = dict(item.split("=", 1) for item in opts.compare)
        rows = {"module": [], "module (check mode)": [], **{f"module {label}": [] for label in others},
                "python script": []}
        cpu = {name: [] for name in rows}
        rss = {name: 0 for name in rows}

        def record(name: str, argv: list[str]) -> dict:
            ms, cpu_ms, out = run_timed(argv)
            rows[name].append(ms)
            cpu[name].append(cpu_ms)
            return json.loads(out)

        def record_rss(name: str, argv: list[str]) -> dict:
            kib, out = peak_rss_kib(argv, work)
            rss[name] = max(rss[name], kib)
            return json.loads(out)

        def one_round(run) -> None:
            # Each path drains the server and puts it back, so every call changes the file.
            for state in ("drain", "enabled"):
                if not run("module", module_argv(state, False))["changed"]:
                    raise SystemExit("the module did not change anything")
            if not run("module (check mode)", module_argv("drain", True))["changed"]:
                raise SystemExit("the module in check mode did not see a change")
            for label, binary in others.items():
                for state in ("drain", "enabled"):
                    if not run(f"module {label}", module_argv(state, False, binary))["changed"]:
                        raise SystemExit(f"the module {label} did not change anything")
            for state in ("drain", "enabled"):
                argv = [sys.executable, os.path.abspath(__file__), "--baseline", cfg, backend, server, state]
                if not run("python script", argv)["changed"]:
                    raise SystemExit("the baseline did not change anything")

        for _ in range(opts.rounds):
            one_round(record)
        one_round(record_rss)

        base = statistics.median(rows["python script"])
        base_cpu = statistics.median(cpu["python script"])
        print(f"file: {opts.backends * opts.servers:,} servers, {size_kib / 1024:.1f} MiB; "
              f"{opts.rounds} drains + {opts.rounds} restores per path, one process per call; medians")
        print(f"| {'path':<26} | {'wall ms':>7} | {'min ms':>6} | {'python/this':>11} | {'CPU ms':>6} "
              f"| {'python/this':>11} | {'peak RSS MiB':>12} | {'RSS/file':>8} |")
        print(f"|{'-' * 28}|{'-' * 8}:|{'-' * 7}:|{'-' * 12}:|{'-' * 7}:|{'-' * 12}:|{'-' * 13}:|{'-' * 9}:|")
        for name, samples in rows.items():
            wall, cpu_ms = statistics.median(samples), statistics.median(cpu[name])
            print(f"| {name:<26} | {wall:>7.1f} | {min(samples):>6.1f} | {base / wall:>10.1f}x | {cpu_ms:>6.1f} | "
                  f"{base_cpu / max(cpu_ms, 0.1):>10.1f}x | {rss[name] / 1024:>12.1f} | {rss[name] / size_kib:>7.2f}x |")
        print(f"wall ms includes process start and fsync; CPU ms is user + system time; peak RSS from a round "
              f"under GNU time; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")


if __name__ == "__main__":
    main()
