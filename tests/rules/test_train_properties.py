"""Properties of the merge-train planner, driven by the discrete-event model in bench/train_model.py.

Each seed runs a lane with bad MRs, flaky pipelines, cancels and pushes to queued MRs, urgent MRs
and pushes to the target by someone else. Trees are sets of (MR, version) on top of the target.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from merge_assist.rules.train_state import TrainMode, TrainSettings

MODEL_PATH = Path(__file__).resolve().parents[2] / "bench" / "train_model.py"


def load_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_model_under_test", MODEL_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


model = load_model()
SEEDS = range(120)


def scenario(seed: int) -> tuple[Any, TrainSettings]:
    """A varied lane per seed: modes, limits, batch bounds, retries and every kind of disturbance."""
    workload = model.Workload(mrs=30, gap=0.25, p_bad=(0.0, 0.1, 0.3)[seed % 3], flaky=(0.0, 0.05)[seed % 2],
                              runners=(1, 2, 4, 8)[seed % 4], p_cancel=0.1, p_push=0.1, p_urgent=0.1,
                              target_pushes=seed % 3)
    settings = TrainSettings(mode=TrainMode.SERIAL if seed % 10 == 0 else TrainMode.TRAIN,
                             min_batch=1 + seed % 2, max_batch=2 + seed % 3, flaky_retries=seed % 2)
    return workload, settings


@pytest.mark.parametrize("seed", SEEDS)
def test_only_tested_trees_land_and_every_mr_is_resolved(seed: int) -> None:
    workload, settings = scenario(seed)
    lane = model.TrainModel(workload, settings, seed)
    outcome = lane.run()
    assert outcome.violations == []
    # After every landing the target's tree is the tree of a pipeline that passed.
    assert all(tree in lane.passed_trees for tree in lane.landed_trees)
    for previous, landed in zip(lane.landed_trees, lane.landed_trees[1:]):
        assert previous <= landed or any(mr < 0 for mr, _ in landed - previous)
    mrs = lane.mrs.values()
    assert not [m.mr_id for m in mrs if m.bad and m.merged_at is not None], "a bad MR landed"
    assert not [m.mr_id for m in mrs if m.cancelled and m.merged_at is not None], "a cancelled MR landed"
    assert outcome.unresolved == [], "every MR lands, is cancelled or is ejected with a reason"
    assert all(m.ejected for m in mrs if m.merged_at is None and not m.cancelled)
    if workload.flaky == 0:
        assert not [m.mr_id for m in mrs if m.ejected and not m.bad], "a good MR was ejected without flakes"


def test_the_checks_catch_a_planner_that_lands_untested_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's checks are not vacuous: landing a car before its pipeline passes is reported."""
    lane = model.TrainModel(model.Workload(mrs=10, p_bad=0.3), TrainSettings(), 1)
    real_snapshot = lane._snapshot

    def premature(arrived: set[int]) -> object:
        snap = real_snapshot(arrived)
        from merge_assist.rules.train_state import CarStatus
        return replace(snap, train=tuple(replace(car, status=CarStatus.PASSED) for car in snap.train))

    monkeypatch.setattr(lane, "_snapshot", premature)
    assert lane.run().violations


def test_the_base_workload_meets_the_issue_targets_on_average() -> None:
    """Not a timing: the model's own time. Train beats serial by far on the issue's workload."""
    train = model.summarize(model.Workload(), TrainSettings(), range(5))
    serial = model.summarize(model.Workload(), TrainSettings(mode=TrainMode.SERIAL), range(5))
    assert train["violations"] == serial["violations"] == 0
    assert train["mean"] * 5 < serial["mean"]
    assert train["pipes"] < serial["pipes"]


def test_the_bench_prints_the_issue_table() -> None:
    result = subprocess.run([sys.executable, str(MODEL_PATH), "--seeds", "1"], capture_output=True, text=True,
                            timeout=120, check=True)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "| train |" in line]
    assert len(rows) == 6 and all(line.endswith("| 0 |") for line in rows), result.stdout
