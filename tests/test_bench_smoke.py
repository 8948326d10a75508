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


@pytest.mark.slow
def test_trains_prints_each_mode_and_matches_the_model_on_the_same_mrs() -> None:
    out = run_bench("trains.py", "--quick", "--mrs", "12", "--seeds", "1", "--first-seed", "2", "--serial-mrs", "4",
                    timeout=600)
    rows = {cells[2]: cells for cells in (line.split("|") for line in out.splitlines())
            if len(cells) > 14 and cells[2].strip() in ("train", "serial")}
    train, serial = rows[" train "], rows[" serial "]
    assert int(train[9]) == 0 and int(serial[9]) == 0, "a bad MR merged"
    assert int(train[10]) == 0, "a good MR was not merged"
    # The simulator run (real bot, git, webhooks) and the model (the planner alone) saw the same MRs:
    # time to merge, p90 and pipelines per merged MR agree.
    assert [cell.strip() for cell in train[4:7]] == [cell.strip() for cell in train[11:14]], train
    assert float(serial[4]) > float(train[4]), "serial merges faster than the train"
