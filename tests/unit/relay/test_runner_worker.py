# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay's resident ansible-runner worker (runner_worker.py, embedded in the relay binary): its helpers
imported as a module, and its protocol with a stand-in ansible_runner module."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

WORKER = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "rust", "crates", "autoheal-relay", "src", "executor",
    "ansible_runner", "runner_worker.py",
)

pytestmark = pytest.mark.skipif(not os.path.exists(WORKER), reason="needs the repository's Rust sources")


@pytest.fixture(name="worker")
def fixture_worker():
    spec = importlib.util.spec_from_file_location("runner_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importing_the_worker_touches_nothing(worker):
    assert worker.protocol is None
    assert worker.ansible_runner is None


def test_the_inventory_stamp_changes_with_any_file_of_the_inventory(worker, tmp_path):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.ini").write_text("lb1\n")
    before = worker.inventory_stamp(str(inventory))
    assert worker.inventory_stamp(str(inventory)) == before
    (inventory / "group_vars" / "all.yml").write_text("x: 1\n")
    assert worker.inventory_stamp(str(inventory)) != before
    single = inventory / "hosts.ini"
    alone = worker.inventory_stamp(str(single))
    assert len(alone) == 1
    single.write_text("lb1\nlb2\n")
    assert worker.inventory_stamp(str(single)) != alone


def test_only_the_standby_dirs_of_dead_workers_are_removed(worker, tmp_path):
    with subprocess.Popen([sys.executable, "-c", "pass"]) as dead:
        dead.wait()
    for name in ("standby-%d-1" % dead.pid, "standby-%d-2" % os.getpid(), "standby-x-1", "run-00000001-5"):
        (tmp_path / name).mkdir()
    worker.remove_orphaned_standby_dirs(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-00000001-5", "standby-%d-2" % os.getpid(), "standby-x-1"]


def test_unsafe_tagged_extra_vars_are_read_as_plain_strings(worker, tmp_path):
    extravars = tmp_path / "extravars"
    extravars.write_text('{"autoheal_actions": [{"server": !unsafe "web{{1}}", "weight": !unsafe "50%"}]}\n')
    assert worker.read_extra_vars(str(extravars)) == {"autoheal_actions": [{"server": "web{{1}}", "weight": "50%"}]}


def output_on_fd2(monkeypatch):
    """As the worker's main() sets it up: Python's own output goes to file descriptor 2, which a run points
    at its log. (Called in the test body: pytest puts its own streams back before each test runs.)"""
    stream = open(2, "w", closefd=False, encoding="utf-8")  # pylint: disable=consider-using-with
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(sys, "stderr", stream)


def test_a_run_reports_the_runner_status_and_its_output_goes_to_the_log(worker, tmp_path, monkeypatch):
    output_on_fd2(monkeypatch)
    seen = {}

    class Result:
        status, rc = "failed", 2

    class StandIn:
        @staticmethod
        def run(**kwargs):
            seen.update(kwargs)
            print("chatter on stdout")
            os.write(2, b"boom on stderr\n")
            return Result()

    worker.ansible_runner = StandIn
    log = tmp_path / "run.log"
    request = {"private_data_dir": str(tmp_path), "playbook": "p.yml", "ident": "autoheal",
               "inventory": "inv", "limit": "lbs", "log": str(log)}
    assert worker.run(request) == {"status": "failed", "rc": 2, "standby": False}
    assert seen == {"private_data_dir": str(tmp_path), "playbook": "p.yml", "ident": "autoheal",
                    "inventory": "inv", "limit": "lbs", "quiet": True}
    assert "chatter on stdout" in log.read_text() and "boom on stderr" in log.read_text()


def test_a_runner_that_raises_is_an_error_answer(worker, tmp_path, monkeypatch):
    output_on_fd2(monkeypatch)

    class StandIn:
        @staticmethod
        def run(**kwargs):
            del kwargs
            raise RuntimeError("no such playbook")

    worker.ansible_runner = StandIn
    request = {"private_data_dir": str(tmp_path), "playbook": "p.yml", "ident": "autoheal",
               "inventory": "inv", "log": str(tmp_path / "run.log")}
    assert worker.run(request) == {"error": "ansible_runner.run raised RuntimeError: no such playbook"}
    assert "Traceback" in (tmp_path / "run.log").read_text()


def speak(tmp_path, module_source, lines):
    """The worker's protocol lines for `lines` on its stdin, with `module_source` as ansible_runner."""
    (tmp_path / "ansible_runner.py").write_text(textwrap.dedent(module_source))
    with open(WORKER, encoding="utf-8") as source:
        code = source.read()
    done = subprocess.run(
        [sys.executable, "-u", "-c", code], input="".join(line + "\n" for line in lines), capture_output=True,
        text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(tmp_path)), check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_the_protocol_is_ready_then_one_answer_per_request_and_nothing_else_on_stdout(tmp_path):
    module = """
        class Result:
            status, rc = "successful", 0
        def run(**kwargs):
            print("chatter that must not reach the protocol")
            return Result()
    """
    request = {"private_data_dir": str(tmp_path), "playbook": "p.yml", "ident": "autoheal", "inventory": "inv",
               "log": str(tmp_path / "run.log")}
    rc, answers, stderr = speak(tmp_path, module, [json.dumps(request), "not json"])
    assert rc == 0
    assert answers[0] == {"ready": True}
    assert answers[1] == {"status": "successful", "rc": 0, "standby": False}
    assert answers[2]["error"].startswith("request is not JSON")
    assert len(answers) == 3
    assert "chatter" not in stderr, "a run's output goes to its log"


def test_a_worker_without_ansible_runner_says_so_and_exits(tmp_path):
    rc, answers, stderr = speak(tmp_path, "raise ImportError('not installed here')\n", [])
    assert rc == 1
    assert answers == [{"error": "cannot import ansible_runner: not installed here"}]
    assert stderr == ""
