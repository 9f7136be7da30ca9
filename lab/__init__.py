"""The lab: the whole autoheal loop on loopback, from real programs (backends, HAProxy, Prometheus,
Alertmanager, autoheal-relay, ansible-runner). ``lab.stack`` starts and drives it; ``lab.demo`` narrates it
(scripts/demo.sh); the end-to-end tests (tests/e2e) and the benchmark (bench/loop.py) import it.
Import it with the repository root on the path (``python -m lab.demo`` from there, or PYTHONPATH)."""
