#!/usr/bin/env python3
# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""100 actions in one `ansible-playbook autoheal.haproxy.remediate` run, timed end to end.

    bench/batch_bench.py [--rounds N] [--actions N] [--baseline-ref REF --baseline-binary PATH]

Builds the collection from this checkout (with the module binary scripts/build.sh put in plugins/modules)
into a temp collections tree, writes a haproxy.cfg of 100 servers (10 backends of 10, on 127.0.0.1), and
times whole `ansible-playbook` runs on one local host (no admin socket, the role's default validation, so
`haproxy -c` when haproxy is installed; min_active 0 so that every drain is allowed; require_healthy off,
as there is no socket to read a check from): N drain actions, then N restores. With --baseline-ref, the
same runs on the collection as of that git ref (f3ecc2c: the role that called the module once per action),
with the module binary given by --baseline-binary (built from that ref), in the same run, alternating.
Also times the floor: ansible-playbook running one debug task on the same host. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = "plugins/modules/__bin__/server_linux_x86_64"


def collection_from_checkout(root: str) -> str:
    dest = os.path.join(root, "ansible_collections", "autoheal", "haproxy")
    os.makedirs(dest)
    tar = subprocess.run(
        ["tar", "-C", REPO, "--exclude=./.git", "--exclude=./.venv", "--exclude=./rust", "--exclude=./build",
         "--exclude=./tests", "--exclude=*.tar.gz", "-cf", "-", "."],
        check=True, capture_output=True).stdout
    subprocess.run(["tar", "-C", dest, "-xf", "-"], input=tar, check=True)
    return root


def collection_from_ref(root: str, ref: str, binary: str) -> str:
    dest = os.path.join(root, "ansible_collections", "autoheal", "haproxy")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref, "--", ".", ":!rust", ":!tests"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-C", dest, "-xf", "-"], input=archive, check=True)
    # The binaries' directory is not in git (scripts/build.sh fills it).
    os.makedirs(os.path.dirname(os.path.join(dest, BINARY)), exist_ok=True)
    shutil.copy(binary, os.path.join(dest, BINARY))
    os.chmod(os.path.join(dest, BINARY), 0o755)
    return root


def config(path: str) -> None:
    lines = ["global\n    maxconn 256\n\ndefaults\n    mode http\n    timeout connect 1s\n"
             "    timeout client 5s\n    timeout server 5s\n\nfrontend fe\n    bind 127.0.0.1:1\n"
             "    default_backend be0\n"]
    for b in range(10):
        lines.append(f"\nbackend be{b}\n    balance roundrobin\n")
        lines.extend(f"    server s{b}_{s} 127.0.0.1:{20000 + b * 10 + s} check weight 10\n" for s in range(10))
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--actions", type=int, default=100)
    parser.add_argument("--baseline-ref")
    parser.add_argument("--baseline-binary")
    opts = parser.parse_args()
    if bool(opts.baseline_ref) != bool(opts.baseline_binary):
        parser.error("--baseline-ref and --baseline-binary go together")
    playbook = shutil.which("ansible-playbook", path=os.path.join(REPO, ".venv", "bin")) or "ansible-playbook"

    with tempfile.TemporaryDirectory(prefix="autoheal-batch-bench.") as work:
        paths = {"this checkout (one call)": collection_from_checkout(os.path.join(work, "new"))}
        if opts.baseline_ref:
            label = f"{opts.baseline_ref}"
            paths[label] = collection_from_ref(os.path.join(work, "old"), opts.baseline_ref, opts.baseline_binary)
        servers = [(b, f"s{b}_{s}") for b in range(10) for s in range(10)][: opts.actions]
        actions = {
            state: {"autoheal_actions": [{"backend": f"be{b}", "server": name, "state": state,
                                          "reason": {"alert": "bench"}} for b, name in servers]}
            for state in ("drain", "enabled")
        }
        times = {(label, state): [] for label in paths for state in actions}
        # The floor: ansible-playbook starting and running one task on the same host, timed the same way.
        floor_playbook = os.path.join(work, "floor.yml")
        with open(floor_playbook, "w", encoding="utf-8") as f:
            f.write("- hosts: haproxy\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: floor}\n")
        floor = []
        for round_no in range(opts.rounds):
            for label, collections in paths.items():
                cfg_dir = os.path.join(work, f"cfg-{round_no}-{len(label)}")
                os.mkdir(cfg_dir)
                cfg = os.path.join(cfg_dir, "haproxy.cfg")
                config(cfg)
                with open(cfg, encoding="utf-8") as f:
                    original = f.read()
                inventory = os.path.join(work, "inventory")
                with open(inventory, "w", encoding="utf-8") as f:
                    f.write(f"[haproxy]\nlb1 ansible_connection=local ansible_python_interpreter=/nonexistent\n"
                            f"[haproxy:vars]\nautoheal_remediate_config={cfg}\nautoheal_remediate_socket=\n"
                            f"autoheal_remediate_min_active=0\nautoheal_remediate_reload_method=none\n"
                            # No admin socket, so no health check to gate a restore on: restore at once.
                            f"autoheal_remediate_require_healthy=false\n")
                env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR="1",
                           ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"))
                for state, extra in actions.items():
                    extra_file = os.path.join(work, f"{state}.json")
                    with open(extra_file, "w", encoding="utf-8") as f:
                        json.dump(extra, f)
                    start = time.perf_counter()
                    proc = subprocess.run([playbook, "-i", inventory, "autoheal.haproxy.remediate",
                                           "-e", f"@{extra_file}"], env=env, capture_output=True, text=True)
                    elapsed = time.perf_counter() - start
                    if proc.returncode != 0:
                        raise SystemExit(f"{label} {state} failed:\n{proc.stdout}\n{proc.stderr}")
                    times[(label, state)].append(elapsed)
                with open(cfg, encoding="utf-8") as f:
                    if f.read() != original:
                        raise SystemExit(f"{label}: the restores did not give the original file back")
            start = time.perf_counter()
            subprocess.run([playbook, "-i", inventory, floor_playbook], env=env, check=True, capture_output=True)
            floor.append(time.perf_counter() - start)

        print(f"{opts.actions} actions in one ansible-playbook run (one local host, {len(servers)} of 100 servers, "
              f"no socket, default validation), median of {opts.rounds} runs, seconds")
        first = next(iter(paths))
        print(f"| {'collection':<40} | {'drain':>6} | {'restore':>7} | {'vs this checkout':>16} |")
        print(f"|{'-' * 42}|{'-' * 7}:|{'-' * 8}:|{'-' * 17}:|")
        for label in paths:
            drain = statistics.median(times[(label, 'drain')])
            restore = statistics.median(times[(label, 'enabled')])
            ratio = (drain + restore) / (statistics.median(times[(first, 'drain')])
                                         + statistics.median(times[(first, 'enabled')]))
            print(f"| {label:<40} | {drain:>6.2f} | {restore:>7.2f} | {ratio:>15.1f}x |")
        print(f"floor: ansible-playbook with one debug task on the same host, median {statistics.median(floor):.2f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")


if __name__ == "__main__":
    main()
