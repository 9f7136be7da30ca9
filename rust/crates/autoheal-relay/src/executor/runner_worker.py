"""Resident ansible-runner worker of autoheal-relay.

Protocol: one JSON object per line. On start the worker writes {"ready": true} (or
{"error": ...} if ansible_runner cannot be imported). Then, for each request line on stdin
it calls ansible_runner.run() and answers {"status": ..., "rc": ...} or {"error": ...}.
Its stdout carries protocol lines only: everything else written to fd 1 or 2 during a run
goes to the run's log file (outside a run, to the relay's stderr).
When stdin closes the worker exits; if a run is in progress it kills its own process group.
"""
import json
import os
import queue
import signal
import sys
import threading
import traceback

protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def answer(doc):
    protocol.write(json.dumps(doc) + "\n")
    protocol.flush()


try:
    import ansible_runner
except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
    answer({"error": "cannot import ansible_runner: %s" % exc})
    sys.exit(1)

requests = queue.Queue()
running = threading.Event()


def read_requests():
    for line in sys.stdin:
        requests.put(line)
    # The relay is gone. An unfinished run has nobody to report to: stop it with ourselves.
    if running.is_set() and os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    requests.put(None)


def run(request):
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(2)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    try:
        result = ansible_runner.run(
            private_data_dir=request["private_data_dir"],
            playbook=request["playbook"],
            ident=request["ident"],
            inventory=request["inventory"],
            limit=request.get("limit"),
            quiet=True,
        )
        return {"status": result.status, "rc": result.rc}
    except Exception as exc:  # noqa: BLE001 - reported to the relay as a failed run
        traceback.print_exc()
        return {"error": "ansible_runner.run raised %s: %s" % (type(exc).__name__, exc)}
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.dup2(saved, 2)
        os.close(saved)


answer({"ready": True})
threading.Thread(target=read_requests, daemon=True).start()
while True:
    line = requests.get()
    if line is None:
        break
    try:
        request = json.loads(line)
    except ValueError as exc:
        answer({"error": "request is not JSON: %s" % exc})
        continue
    running.set()
    reply = run(request)
    running.clear()
    answer(reply)
