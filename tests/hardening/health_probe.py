"""An outside monitor of /healthz, run as its own process: `python -m tests.hardening.health_probe URL`.

It polls every 50 ms on one keep-alive connection until its standard input closes, then prints
one JSON line: how many probes answered, the slowest answer in seconds, and what failed. Being
its own process, the time it measures is the bot's, not the test process's (hypothesis, the
simulator and the test's own garbage collection share nothing with it).
"""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx

INTERVAL_SECONDS = 0.05


def watch(url: str, stop: threading.Event) -> dict[str, object]:
    probes, slowest, failures = 0, 0.0, []
    with httpx.Client(timeout=5) as client:
        while not stop.wait(INTERVAL_SECONDS):
            started = time.perf_counter()
            try:
                status = client.get(f"{url}/healthz").status_code
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
                continue
            slowest = max(slowest, time.perf_counter() - started)
            probes += 1
            if status != 200:
                failures.append(str(status))
    return {"probes": probes, "slowest": slowest, "failures": failures}


def main() -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(json.dumps(watch(sys.argv[1], stop)), flush=True)


if __name__ == "__main__":
    main()
