"""What the HTTP metrics cost per request (the counter and the histogram the middleware updates),
in one process and in prometheus_client's multiprocess mode (`serve --workers N`, N > 1).

    .venv/bin/python -m bench.metrics_overhead

Each mode runs in a fresh interpreter: the mode is chosen when prometheus_client is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit

REQUESTS = 200_000


def measure() -> float:
    """Microseconds per request in this interpreter's mode."""
    from prometheus_client import Counter, Histogram

    from control_plane.instruments import Metrics

    registry = Metrics().registry
    requests = Counter("bench_requests", "", ["method", "route", "status"], registry=registry)
    latency = Histogram("bench_seconds", "", ["method", "route"], registry=registry)

    def one() -> None:
        latency.labels("GET", "/v1/agent/peers").observe(0.001)
        requests.labels("GET", "/v1/agent/peers", "200").inc()

    return timeit.timeit(one, number=REQUESTS) / REQUESTS * 1e6


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(f"{measure():.1f}")
        return
    with tempfile.TemporaryDirectory(prefix="nodus-bench-metrics-") as directory:
        for mode, extra in (
            ("one process", {}),
            ("multiprocess", {"PROMETHEUS_MULTIPROC_DIR": directory}),
        ):
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            result = subprocess.run(
                [sys.executable, "-m", "bench.metrics_overhead", "--one"],
                env={**env, **extra},
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{mode}: {result.stdout.strip()} us per request (counter + histogram)")


if __name__ == "__main__":
    main()
