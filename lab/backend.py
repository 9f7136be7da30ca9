"""One sick-able server for the end-to-end stack: a web backend plus a node_exporter look-alike.

The web side answers every request with its own name (body and ``X-Served-By`` header) so the load
generator can count per server.  The exporter side serves node_exporter's metric names
(``node_cpu_seconds_total`` per cpu and mode, plus a few gauges) so the collection's alert rules fire
unchanged.  ``POST /cpu`` with a body such as ``0.97`` sets the busy fraction the counters advance at;
``GET /cpu`` reads it back.  ``POST /fault`` sets how the web side misbehaves: ``none``, ``errors`` (every
request but HAProxy's health check answers 500) or ``down`` (the health check fails too); ``GET /fault``
reads it back.  Standard library only.
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CPUS = 2
BUSY_MODES = {"user": 0.7, "system": 0.25, "iowait": 0.05}
# What HAProxy's `option httpchk` asks for (lab/stack.py's config).
HEALTH_PATH = "/health"
FAULTS = ("none", "errors", "down")


class Fault:
    """How the web side misbehaves now (one of FAULTS), shared by both sides' threads."""

    def __init__(self) -> None:
        self.kind = "none"


class CpuModel:
    """Per-mode CPU second counters that advance with wall time at the current busy fraction."""

    def __init__(self, busy: float) -> None:
        self._lock = threading.Lock()
        self._busy = busy
        self._last = time.monotonic()
        self._seconds = {mode: 1000.0 for mode in ("idle", *BUSY_MODES)}

    def _advance(self) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        self._seconds["idle"] += elapsed * (1.0 - self._busy)
        for mode, share in BUSY_MODES.items():
            self._seconds[mode] += elapsed * self._busy * share

    def set_busy(self, busy: float) -> None:
        with self._lock:
            self._advance()
            self._busy = busy

    @property
    def busy(self) -> float:
        with self._lock:
            return self._busy

    def exposition(self) -> str:
        with self._lock:
            self._advance()
            seconds = dict(self._seconds)
            busy = self._busy
        lines = [
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
            "# TYPE node_cpu_seconds_total counter",
        ]
        for cpu in range(CPUS):
            for mode, value in seconds.items():
                lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {value:.6f}')
        lines += [
            "# HELP node_load1 1m load average.",
            "# TYPE node_load1 gauge",
            f"node_load1 {busy * CPUS:.3f}",
            "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.",
            "# TYPE node_memory_MemTotal_bytes gauge",
            "node_memory_MemTotal_bytes 4294967296",
            "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.",
            "# TYPE node_memory_MemAvailable_bytes gauge",
            "node_memory_MemAvailable_bytes 3221225472",
            "",
        ]
        return "\n".join(lines)


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def reply(self, status: int, body: str, content_type: str = "text/plain", extra: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def web_handler(name: str, fault: Fault) -> type[BaseHTTPRequestHandler]:
    class Web(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            sick = fault.kind == "down" or (fault.kind == "errors" and not self.path.startswith(HEALTH_PATH))
            if sick:
                self.reply(500, f"{name} is failing\n", extra={"X-Served-By": name})
            else:
                self.reply(200, f"served by {name}\n", extra={"X-Served-By": name})

        do_HEAD = do_GET

    return Web


def exporter_handler(model: CpuModel, fault: Fault) -> type[BaseHTTPRequestHandler]:
    class Exporter(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/metrics"):
                self.reply(200, model.exposition(), "text/plain; version=0.0.4")
            elif self.path.startswith("/cpu"):
                self.reply(200, f"{model.busy}\n")
            elif self.path.startswith("/fault"):
                self.reply(200, f"{fault.kind}\n")
            else:
                self.reply(404, "not found\n")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode().strip()
            if self.path.startswith("/fault"):
                if raw not in FAULTS:
                    self.reply(400, f"fault must be one of {', '.join(FAULTS)}, got {raw!r}\n")
                    return
                fault.kind = raw
                self.reply(200, f"{raw}\n")
                return
            if not self.path.startswith("/cpu"):
                self.reply(404, "not found\n")
                return
            try:
                busy = float(raw)
            except ValueError:
                self.reply(400, f"busy fraction must be a number between 0 and 1, got {raw!r}\n")
                return
            if not 0.0 <= busy <= 1.0:
                self.reply(400, f"busy fraction must be between 0 and 1, got {busy}\n")
                return
            model.set_busy(busy)
            self.reply(200, f"{busy}\n")

    return Exporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--exporter-port", type=int, required=True)
    parser.add_argument("--busy", type=float, default=0.1)
    args = parser.parse_args()

    model, fault = CpuModel(args.busy), Fault()
    web = ThreadingHTTPServer(("127.0.0.1", args.web_port), web_handler(args.name, fault))
    exporter = ThreadingHTTPServer(("127.0.0.1", args.exporter_port), exporter_handler(model, fault))
    web.daemon_threads = exporter.daemon_threads = True
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    web.serve_forever()


if __name__ == "__main__":
    main()
