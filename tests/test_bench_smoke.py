"""The benchmarks run and print their figures (tiny configurations; no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGE_ASSIST_")}
    result = subprocess.run([sys.executable, f"bench/{script}", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{script} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_api_cost_prints_requests_per_merged_mr() -> None:
    out = run_bench("api_cost.py", "--durations", "1", "--no-webhooks-only", "--scale", "120")
    assert "cold: first MR in a fresh process" in out
    assert "warm: next MR in the same project" in out
    assert "PUT /projects/:id/merge_requests/:iid/merge" in out
    assert "figure: " in out and "API requests per merged MR" in out


def test_webhook_latency_prints_latency_and_throughput() -> None:
    out = run_bench("webhook_latency.py", "--requests", "50", "--rate", "50", "--warmup", "10",
                    "--closed-seconds", "1", "--clients", "4", "--rounds", "1")
    assert "open loop: 50 requests at 50/s" in out
    for name in ("bot", "bare"):
        assert any(line.strip().startswith(f"{name} ") and "p99" in line for line in out.splitlines())
    assert "figure: webhook p50" in out
    assert "figure: webhook throughput" in out
    assert "figure: errors bot 0, bare 0" in out
