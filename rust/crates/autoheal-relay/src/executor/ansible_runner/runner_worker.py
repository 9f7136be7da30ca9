"""Resident ansible-runner worker of autoheal-relay.

Protocol: one JSON object per line. On start the worker writes {"ready": true} (or
{"error": ...} if ansible_runner cannot be imported). Then, for each request line on stdin
it carries out the run and answers {"status": ..., "rc": ..., "standby": bool} or {"error": ...}.
Its stdout carries protocol lines only: everything else written to fd 1 or 2 during a run
goes to the run's log file (outside a run, to the relay's stderr).
When stdin closes the worker exits; if a run is in progress it kills its own process group.

Warm standby (requests with "standby": true): after each run the worker starts the next one
ahead of time, as the playbook autoheal.haproxy.standby with the same inventory, limit and
playbook, which waits on a FIFO. The next request whose inputs match hands its extra vars
over through the FIFO instead of starting ansible-playbook, so interpreter start, inventory
and playbook parsing are already done when the alert arrives. A standby is retired (told to
stop through the same FIFO) when the inputs differ, the inventory changed, or it is older
than STANDBY_MAX_AGE_S; one that ends on its own turns the standby off for this worker.
"""
import errno
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback

protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

STANDBY_PLAYBOOK = "autoheal.haproxy.standby"
# Retired and restarted after this, so that changed playbooks, roles and collections are picked up.
STANDBY_MAX_AGE_S = 600
# How long a request waits for a standby that is still starting to reach its hand-off.
HANDOFF_WAIT_S = 15
MAINTENANCE_EVERY_S = 10


def answer(doc):
    protocol.write(json.dumps(doc) + "\n")
    protocol.flush()


def log(msg):
    print("autoheal-relay runner worker: %s" % msg, file=sys.stderr, flush=True)


try:
    import ansible_runner
except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
    answer({"error": "cannot import ansible_runner: %s" % exc})
    sys.exit(1)

requests = queue.Queue()
running = threading.Event()


def descendants(root):
    """Every process below `root` (any depth), from the parent pids in /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8", errors="replace") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants():
    """ansible-runner starts ansible-playbook in a session of its own (a pty), and ansible starts its
    workers in theirs: they are not in this process group and would outlive this worker. Stop the
    whole tree (a stopped process cannot fork), then kill it."""
    tree = []
    for _ in range(2):
        for pid in descendants(os.getpid()):
            if pid not in tree:
                tree.append(pid)
                try:
                    os.kill(pid, signal.SIGSTOP)
                except OSError:
                    pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def read_requests():
    for line in sys.stdin:
        requests.put(line)
    # The relay is gone: a run in progress and the warm standby have nobody to report to.
    kill_descendants()
    if running.is_set() and os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    requests.put(None)


def run(request):
    log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    saved = os.dup(2)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    try:
        result = ansible_runner.run(
            private_data_dir=request["private_data_dir"],
            playbook=request["playbook"],
            ident=request["ident"],
            inventory=request["inventory"],
            limit=request.get("limit"),
            quiet=True,
        )
        return {"status": result.status, "rc": result.rc, "standby": False}
    except Exception as exc:  # noqa: BLE001 - reported to the relay as a failed run
        traceback.print_exc()
        return {"error": "ansible_runner.run raised %s: %s" % (type(exc).__name__, exc)}
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.dup2(saved, 2)
        os.close(saved)


def inventory_stamp(path):
    """Changes whenever a file of the inventory (a file or a directory tree) changes."""
    stamps = []
    for root, _, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [path])]:
        for name in files:
            try:
                info = os.stat(os.path.join(root, name))
            except OSError:
                continue
            stamps.append((name, info.st_mtime_ns, info.st_size))
    return sorted(stamps)


def remove_orphaned_standby_dirs(work_dir):
    """Standby dirs of workers that are gone (killed before they could clean up)."""
    for name in os.listdir(work_dir):
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "standby" or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(work_dir, name), ignore_errors=True)
        except PermissionError:
            pass


def inputs(request):
    return (request["playbook"], request["inventory"], request.get("limit"), request["ident"])


def read_extra_vars(path):
    """A run's extra vars, YAML whose strings the relay tagged !unsafe: read as plain strings here, the
    hand-off's receiver (relay_handoff) marks them unsafe again."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    with open(path, encoding="utf-8") as src:
        return yaml.load(src, Loader=Loader)  # noqa: S506 - a SafeLoader with one more scalar tag


class Standby:
    """The next run, started ahead of time and waiting for its extra vars."""

    def __init__(self, request):
        self.inputs = inputs(request)
        self.stamp = inventory_stamp(request["inventory"])
        work_dir = os.path.dirname(os.path.abspath(request["private_data_dir"]))
        remove_orphaned_standby_dirs(work_dir)
        self.dir = tempfile.mkdtemp(prefix="standby-%d-" % os.getpid(), dir=work_dir)
        self.channel = os.path.join(self.dir, "handoff")
        self.started = time.monotonic()
        self.retired = False
        try:
            os.mkfifo(self.channel, 0o600)
            os.mkdir(os.path.join(self.dir, "env"))
            with open(os.path.join(self.dir, "env", "extravars"), "w", encoding="utf-8") as out:
                json.dump({
                    "autoheal_standby_channel": self.channel,
                    "autoheal_standby_playbook": request["playbook"],
                    "autoheal_standby_timeout": STANDBY_MAX_AGE_S + 60,
                    "autoheal_standby_owner": os.getpid(),
                }, out)
            self.thread, self.runner = ansible_runner.run_async(
                private_data_dir=self.dir,
                playbook=STANDBY_PLAYBOOK,
                ident=request["ident"],
                inventory=request["inventory"],
                limit=request.get("limit"),
                quiet=True,
                cancel_callback=lambda: self.retired,
            )
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def stale_for(self, request):
        """Why this standby cannot carry out `request`, or None."""
        if not self.thread.is_alive():
            return "it ended on its own (status %s)" % self.runner.status
        if inputs(request) != self.inputs:
            return "the playbook, inventory or limit changed"
        return self.stale()

    def stale(self):
        if time.monotonic() - self.started > STANDBY_MAX_AGE_S:
            return "older than %d s" % STANDBY_MAX_AGE_S
        if inventory_stamp(self.inputs[1]) != self.stamp:
            return "the inventory changed"
        return None

    def send(self, message, wait_s):
        """Writes `message` to the FIFO once the standby reads it; False if it never does."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fd = os.open(self.channel, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as err:
                # ENXIO: nobody reads yet (the standby is still starting).
                if err.errno != errno.ENXIO or not self.thread.is_alive() or time.monotonic() > deadline:
                    return False
                time.sleep(0.002)
        os.set_blocking(fd, True)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(message).encode())
        except BrokenPipeError:
            # The standby ended between opening and reading: it ran nothing of this message.
            return False
        return True

    def hand_over(self, request):
        """Runs `request` on this standby; None if it could not take it (then nothing ran)."""
        extra_vars = read_extra_vars(os.path.join(request["private_data_dir"], "env", "extravars"))
        if not self.send({"vars": extra_vars}, HANDOFF_WAIT_S):
            return None
        with open(request["log"], "w", encoding="utf-8") as out:
            out.write("ran on the warm standby started in %s\n" % self.dir)
        self.thread.join()
        # The run's artifacts belong with its private data dir, where the relay looks for them.
        artifacts = os.path.join(self.dir, "artifacts")
        if os.path.isdir(artifacts):
            shutil.move(artifacts, os.path.join(request["private_data_dir"], "artifacts"))
        shutil.rmtree(self.dir, ignore_errors=True)
        return {"status": self.runner.status, "rc": self.runner.rc, "standby": True}

    def retire(self, why, wait_s=None):
        """Stops the standby; its clean-up runs in the background unless `wait_s` bounds a wait for it."""
        self.retired = True
        log("retiring the warm standby: %s" % why)
        if self.thread.is_alive():
            self.send({"cancel": why}, 0)

        def clean_up():
            self.thread.join(wait_s)
            shutil.rmtree(self.dir, ignore_errors=True)

        if wait_s is None:
            threading.Thread(target=clean_up, daemon=True).start()
        else:
            clean_up()


class Worker:
    def __init__(self):
        self.standby = None
        self.last_request = None
        self.standby_off = False

    def serve(self, request):
        reply = None
        if self.standby is not None:
            why = self.standby.stale_for(request)
            if why is None:
                reply = self.standby.hand_over(request)
                why = None if reply is not None else "it did not take the hand-off in %d s" % HANDOFF_WAIT_S
            if why is not None:
                self.retire_or_give_up(why)
            self.standby = None
        if reply is None:
            reply = run(request)
        self.last_request = request if request.get("standby") else None
        self.start_standby()
        return reply

    def retire_or_give_up(self, why):
        self.standby.retire(why)
        if self.standby.runner.status not in ("unstarted", "starting", "running", "canceled"):
            # It ended without being asked to: it would fail the same way again.
            self.standby_off = True
            log("warm standby off for this worker: %s; see %s" % (why, self.standby.dir))

    def start_standby(self):
        if self.last_request is None or self.standby_off:
            return
        try:
            self.standby = Standby(self.last_request)
        except Exception as exc:  # noqa: BLE001 - runs go on without a standby
            self.standby_off = True
            log("cannot start a warm standby (%s: %s); runs start from scratch" % (type(exc).__name__, exc))

    def maintain(self):
        """Between requests: replace a standby that went stale."""
        if self.standby is None:
            return
        why = self.standby.stale() if self.standby.thread.is_alive() else "it ended on its own"
        if why is not None:
            self.retire_or_give_up(why)
            self.standby = None
            self.start_standby()

    def stop(self):
        if self.standby is not None:
            self.standby.retire("the relay stopped", wait_s=10)


answer({"ready": True})
threading.Thread(target=read_requests, daemon=True).start()
worker = Worker()
while True:
    try:
        line = requests.get(timeout=MAINTENANCE_EVERY_S)
    except queue.Empty:
        worker.maintain()
        continue
    if line is None:
        break
    try:
        request = json.loads(line)
    except ValueError as exc:
        answer({"error": "request is not JSON: %s" % exc})
        continue
    running.set()
    try:
        reply = worker.serve(request)
    except Exception as exc:  # noqa: BLE001 - reported to the relay; the worker stays up
        traceback.print_exc()
        reply = {"error": "the worker failed: %s: %s" % (type(exc).__name__, exc)}
    running.clear()
    answer(reply)
worker.stop()
