"""A discrete-event model of one lane's merge train, driven by the real planner (rules.train.plan).

Time is in pipeline durations D. MR i arrives at i·gap and is bad with probability p_bad; a bad
MR breaks one job, so every pipeline whose tree holds it fails u·D after it starts, u ~ U(0.2, 1)
drawn once per bad MR; a pipeline also fails with probability `flaky` at a U(0.2, 1)·D of its own.
Passing pipelines take D. At most `runners` pipelines run at once (the lane's pipeline limit is
set to the same number). Trees are sets of (MR, version) on top of the commits that were on the
target; semantic conflicts between good MRs are not modelled. Optional disturbances (for the
property test): cancels and pushes to queued MRs, urgent MRs, pushes to the target by someone else.

The model executor checks, at every landing, that the target's new tree is the tree of a passing
pipeline and contains the old target, and at every ejection that the proof pipeline failed with
the MR in its tree. Standard library only:

Figures are computed per run (mean and nearest-rank p90 time-to-merge of the good MRs that
landed, pipelines started per merged MR) and averaged over the seeds, as the reference model does.

    python bench/train_model.py            # the issue's table (20 seeds per row)
    python bench/train_model.py --seeds 5
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from merge_assist.rules.model import Priority  # noqa: E402
from merge_assist.rules.train import plan  # noqa: E402
from merge_assist.rules.train_actions import (Action, BuildCar, DropCar, Eject, LandCar, RetryCar,  # noqa: E402
                                              StartSideCar, Wait)
from merge_assist.rules.train_state import (Car, CarStatus, QueuedMr, TrainMode, TrainSettings,  # noqa: E402
                                            TrainSnapshot)

Tree = frozenset[tuple[int, int]]  # (MR id, version); negative ids are commits pushed by others


@dataclass(frozen=True)
class Workload:
    mrs: int = 80
    gap: float = 0.25
    p_bad: float = 0.1
    flaky: float = 0.0
    runners: int = 4
    p_cancel: float = 0.0  # each MR: cancelled at a random time within 2 D of arriving
    p_push: float = 0.0  # each MR: a new commit pushed within 2 D of arriving (it stays queued)
    p_urgent: float = 0.0
    target_pushes: int = 0  # commits pushed to the target by someone else during the run


@dataclass(frozen=True)
class Arrival:
    """One MR of a workload: when it arrives (in D), whether it is bad and when its failure shows."""

    mr_id: int
    at: float
    bad: bool
    fail_after: float
    urgent: bool
    cancel_at: float | None
    push_at: float | None


def draw_arrivals(workload: Workload, rng: random.Random) -> list[Arrival]:
    """The workload's MRs, drawn in a fixed order so that bench/trains.py can replay a seed's MRs on
    the simulator and compare with this model run for run."""
    arrivals = []
    for mr_id in range(workload.mrs):
        bad = rng.random() < workload.p_bad
        urgent = rng.random() < workload.p_urgent
        fail_after = rng.uniform(0.2, 1.0)
        at = mr_id * workload.gap
        cancel_at = at + rng.uniform(0, 2) if rng.random() < workload.p_cancel else None
        push_at = at + rng.uniform(0, 2) if rng.random() < workload.p_push else None
        arrivals.append(Arrival(mr_id, at, bad, fail_after, urgent, cancel_at, push_at))
    return arrivals


@dataclass
class SimMr:
    mr_id: int
    arrival: float
    bad: bool
    fail_after: float
    priority: Priority
    version: int = 0
    flaky_retries: int = 0
    merged_at: float | None = None
    ejected: str = ""
    cancelled: bool = False

    @property
    def queued(self) -> bool:
        return self.merged_at is None and not self.ejected and not self.cancelled


@dataclass
class SimCar:
    car: Car
    tree: Tree
    base_tree: Tree


@dataclass
class Outcome:
    """One run's figures and what the checks saw."""

    latencies: list[float] = field(default_factory=list)
    pipelines: int = 0
    merged: int = 0
    wrongly_ejected: int = 0
    unresolved: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


class TrainModel:
    """The lane, its pipelines and the executor's side of the contract in rules.train."""

    def __init__(self, workload: Workload, settings: TrainSettings, seed: int) -> None:
        self.workload = workload
        self.settings = replace(settings, pipeline_limit=workload.runners)
        self.rng = random.Random(seed)
        self.now = 0.0
        self.events: list[tuple[float, int, str, int]] = []
        self.counter = itertools.count()
        self.mrs: dict[int, SimMr] = {}
        self.target_tree: Tree = frozenset()
        self.target_head = "t0"
        self.train: list[SimCar] = []
        self.side: list[SimCar] = []
        self.next_car_id = 1
        self.pipelines: dict[int, tuple[int, Tree, float | None]] = {}  # id -> (car, tree, fails after)
        self.running: dict[int, int] = {}  # pipeline id -> car id, on a runner
        self.runner_queue: list[int] = []
        self.outcome = Outcome()
        self.landed_trees: list[Tree] = []
        self.passed_trees: set[Tree] = set()

    # -- driving -----------------------------------------------------------------------------

    def run(self) -> Outcome:
        w = self.workload
        for arrival in draw_arrivals(w, self.rng):
            mr_id = arrival.mr_id
            self.mrs[mr_id] = SimMr(mr_id, arrival.at, arrival.bad, arrival.fail_after,
                                    Priority.URGENT if arrival.urgent else Priority.NORMAL)
            self._at(arrival.at, "arrive", mr_id)
            if arrival.cancel_at is not None:
                self._at(arrival.cancel_at, "cancel", mr_id)
            if arrival.push_at is not None:
                self._at(arrival.push_at, "push", mr_id)
        for number in range(w.target_pushes):
            self._at(self.rng.uniform(0, w.mrs * w.gap), "target", -1 - number)
        arrived: set[int] = set()
        while self.events:
            self.now = self.events[0][0]
            while self.events and self.events[0][0] == self.now:
                _, _, kind, subject = heapq.heappop(self.events)
                self._handle(kind, subject, arrived)
            self._plan_until_quiet(arrived)
            if self.now > 50 * w.mrs * w.gap + 1000:
                self.outcome.violations.append("the run did not end")
                break
        self.outcome.unresolved = [m.mr_id for m in self.mrs.values() if m.queued]
        return self.outcome

    def _at(self, when: float, kind: str, subject: int) -> None:
        heapq.heappush(self.events, (when, next(self.counter), kind, subject))

    def _handle(self, kind: str, subject: int, arrived: set[int]) -> None:
        if kind == "arrive":
            arrived.add(subject)
        elif kind == "cancel" and subject in arrived and self.mrs[subject].queued:
            self.mrs[subject].cancelled = True
        elif kind == "push" and subject in arrived and self.mrs[subject].queued:
            self.mrs[subject].version += 1
        elif kind == "target":
            self.target_tree = self.target_tree | {(subject, 0)}
            self.target_head = f"t{subject}"
        elif kind == "done":
            self._pipeline_done(subject)

    def _plan_until_quiet(self, arrived: set[int]) -> None:
        for _ in range(50):
            actions = plan(self._snapshot(arrived))
            if all(isinstance(action, Wait) for action in actions):
                return
            for action in actions:
                self._perform(action)
        raise RuntimeError("the planner did not settle within 50 rounds")

    def _snapshot(self, arrived: set[int]) -> TrainSnapshot:
        entries = tuple(QueuedMr(entry_id=m.mr_id, iid=m.mr_id, head_sha=f"{m.mr_id}.{m.version}",
                                 priority=m.priority, sequence=m.mr_id, flaky_retries=m.flaky_retries)
                        for m in self.mrs.values() if m.mr_id in arrived and m.queued)
        return TrainSnapshot(target_head=self.target_head, entries=entries,
                             train=tuple(c.car for c in self.train), side_cars=tuple(c.car for c in self.side),
                             settings=self.settings, next_car_id=self.next_car_id)

    # -- the executor ------------------------------------------------------------------------

    def _perform(self, action: Action) -> None:
        if isinstance(action, StartSideCar) or (isinstance(action, BuildCar) and action.after_car is None):
            if action.base_sha != self.target_head:
                self.outcome.violations.append(f"car {action.car_id} asked for on a stale target head")
        if isinstance(action, BuildCar):
            base = self._sim_car(action.after_car).tree if action.after_car is not None else self.target_tree
            self._start_car(Car(action.car_id, action.riders, CarStatus.TESTING, action.base_sha,
                                after_car=action.after_car), base, self.train)
        elif isinstance(action, StartSideCar):
            for rider in action.riders:
                self.mrs[rider.entry_id].flaky_retries += 1
            self._start_car(Car(action.car_id, action.riders, CarStatus.TESTING, action.base_sha, side=True,
                                held=action.held, suspects_proven=action.suspects_proven,
                                proof_pipeline=action.proof_pipeline), self.target_tree, self.side)
        elif isinstance(action, LandCar):
            self._land(self._sim_car(action.car_id))
        elif isinstance(action, DropCar):
            self._drop(self._sim_car(action.car_id))
        elif isinstance(action, RetryCar):
            sim = self._sim_car(action.car_id)
            for rider in sim.car.riders:
                self.mrs[rider.entry_id].flaky_retries += 1
            sim.car = replace(sim.car, status=CarStatus.TESTING, attempts=sim.car.attempts + 1)
            self._start_pipeline(sim)
        elif isinstance(action, Eject):
            self._eject(action)

    def _start_car(self, car: Car, base: Tree, where: list[SimCar]) -> None:
        self.next_car_id = max(self.next_car_id, car.car_id + 1)
        tree = base | {(r.entry_id, int(r.head_sha.split(".")[1])) for r in car.riders}
        sim = SimCar(car, frozenset(tree), base)
        where.append(sim)
        self._start_pipeline(sim)

    def _start_pipeline(self, sim: SimCar) -> None:
        pipeline_id = len(self.pipelines) + 1
        self.outcome.pipelines += 1
        fail_after = [self.mrs[mr].fail_after for mr, _ in sim.tree if mr >= 0 and self.mrs[mr].bad]
        if self.rng.random() < self.workload.flaky:
            fail_after.append(self.rng.uniform(0.2, 1.0))
        self.pipelines[pipeline_id] = (sim.car.car_id, sim.tree, min(fail_after, default=None))
        sim.car = replace(sim.car, pipeline_id=pipeline_id)
        self.runner_queue.append(pipeline_id)
        self._fill_runners()

    def _fill_runners(self) -> None:
        while self.runner_queue and len(self.running) < self.workload.runners:
            pipeline_id = self.runner_queue.pop(0)
            car_id, _, fail_after = self.pipelines[pipeline_id]
            self.running[pipeline_id] = car_id
            self._at(self.now + (1.0 if fail_after is None else fail_after), "done", pipeline_id)

    def _pipeline_done(self, pipeline_id: int) -> None:
        if self.running.pop(pipeline_id, None) is None:
            return  # cancelled earlier
        self._fill_runners()
        car_id, _, fail_after = self.pipelines[pipeline_id]
        passed = fail_after is None
        sim = self._find(car_id)
        if sim is not None and sim.car.pipeline_id == pipeline_id:
            sim.car = replace(sim.car, status=CarStatus.PASSED if passed else CarStatus.FAILED)
            if passed:
                self.passed_trees.add(sim.tree)
            for rider in sim.car.riders if passed else ():
                self.mrs[rider.entry_id].flaky_retries = 0

    def _land(self, sim: SimCar) -> None:
        tree = sim.tree
        if self.train[0] is not sim or sim.car.status is not CarStatus.PASSED or tree not in self.passed_trees:
            self.outcome.violations.append(f"car {sim.car.car_id} landed out of turn or untested")
        if not self.target_tree <= tree:
            self.outcome.violations.append(f"car {sim.car.car_id} would drop commits from the target")
        for mr_id, version in tree - self.target_tree:
            mr = self.mrs[mr_id]
            if mr.bad or not mr.queued or mr.version != version:
                self.outcome.violations.append(f"MR {mr_id} landed bad, unqueued or stale")
            mr.merged_at = self.now
            self.outcome.merged += 1
            self.outcome.latencies.append(self.now - mr.arrival)
        self.target_tree = tree
        self.target_head = f"car{sim.car.car_id}"
        self.landed_trees.append(tree)
        self.train.pop(0)
        if self.train:
            self.train[0].car = replace(self.train[0].car, after_car=None, base_sha=self.target_head)

    def _drop(self, sim: SimCar) -> None:
        pipeline_id = sim.car.pipeline_id or 0
        if self.running.pop(pipeline_id, None) is not None:
            self._fill_runners()
        if pipeline_id in self.runner_queue:
            self.runner_queue.remove(pipeline_id)
        (self.side if sim.car.side else self.train).remove(sim)

    def _eject(self, action: Eject) -> None:
        mr = self.mrs[action.entry_id]
        proof = self.pipelines.get(action.proof_pipeline or 0)
        if proof is None or proof[2] is None or all(mr_id != mr.mr_id for mr_id, _ in proof[1]):
            self.outcome.violations.append(f"MR {mr.mr_id} ejected without a failed pipeline holding it")
        mr.ejected = action.reason or "no reason"
        if not mr.bad:
            self.outcome.wrongly_ejected += 1

    def _find(self, car_id: int) -> SimCar | None:
        return next((c for c in (*self.train, *self.side) if c.car.car_id == car_id), None)

    def _sim_car(self, car_id: int) -> SimCar:
        sim = self._find(car_id)
        if sim is None:
            raise RuntimeError(f"the planner named car {car_id}, which does not exist")
        return sim


def run_model(workload: Workload, settings: TrainSettings, seed: int) -> Outcome:
    return TrainModel(workload, settings, seed).run()


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.9 * (len(ordered) - 1))] if ordered else 0.0


def summarize(workload: Workload, settings: TrainSettings, seeds: range) -> dict[str, float]:
    """Each figure per run (p90 by nearest rank below), then averaged over the seeds."""
    runs = [run_model(workload, settings, seed) for seed in seeds]
    return {"mean": statistics.fmean(statistics.fmean(r.latencies or [0.0]) for r in runs),
            "p90": statistics.fmean(_p90(r.latencies) for r in runs),
            "pipes": statistics.fmean(r.pipelines / max(r.merged, 1) for r in runs),
            "wrong": statistics.fmean(r.wrongly_ejected for r in runs),
            "violations": float(sum(len(r.violations) + len(r.unresolved) for r in runs))}


SERIAL = TrainSettings(mode=TrainMode.SERIAL)
TRAIN = TrainSettings(mode=TrainMode.TRAIN)
ROWS: list[tuple[str, Workload, int]] = [
    ("base: p(bad) 0.1, 4 runners", Workload(), 0),
    ("p(bad) 0.02", Workload(p_bad=0.02), 0),
    ("p(bad) 0.3", Workload(p_bad=0.3), 0),
    ("2 runners", Workload(runners=2), 0),
    ("8 runners", Workload(runners=8), 0),
    ("5 % flaky, 1 flaky retry", Workload(flaky=0.05), 1),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--min-batch", type=int, default=TRAIN.min_batch)
    parser.add_argument("--max-batch", type=int, default=TRAIN.max_batch)
    args = parser.parse_args()
    seeds = range(args.seeds)
    train = replace(TRAIN, min_batch=args.min_batch, max_batch=args.max_batch)
    print(f"80 MRs, one every 0.25 D, failing pipelines report at U(0.2, 1) D; {args.seeds} seeds per row")
    print(f"train: min_batch {train.min_batch}, max_batch {train.max_batch}")
    print("| workload | mode | mean D | p90 D | pipelines/merged MR | good MRs wrongly ejected/run | violations |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for name, workload, retries in ROWS:
        for mode, settings in (("serial", SERIAL), ("train", train)):
            figures = summarize(workload, replace(settings, flaky_retries=retries), seeds)
            print(f"| {name} | {mode} | {figures['mean']:.2f} | {figures['p90']:.2f} | {figures['pipes']:.2f} "
                  f"| {figures['wrong']:.2f} | {figures['violations']:.0f} |")
    print("targets (train): base mean <= 1.4 D, p90 <= 2.0 D, <= 0.9 pipelines; 5 % flaky mean <= 1.6 D, "
          "<= 1.05 pipelines")


if __name__ == "__main__":
    main()
