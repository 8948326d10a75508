"""What the merge-train scheduler reads: one lane's queue, its cars and its settings (plain data).

See `merge_assist.rules.train` for how `plan()` uses these and what the executor must keep true.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from merge_assist.rules.model import Priority

EntryId = int
CarId = int


class TrainMode(str, enum.Enum):
    """`serial`: one car of one MR at a time (the baseline); `train`: cars in parallel, batched."""

    SERIAL = "serial"
    TRAIN = "train"


class CarStatus(str, enum.Enum):
    BUILDING = "building"  # commit being made and pushed; counts against the pipeline limit
    TESTING = "testing"  # pipeline running
    PASSED = "passed"
    FAILED = "failed"  # a job failed (the executor reports it before the pipeline ends)
    LANDED = "landed"  # ignored by the planner; the executor may drop it from the snapshot
    CANCELLED = "cancelled"  # ignored by the planner

    @property
    def running(self) -> bool:
        return self in (CarStatus.BUILDING, CarStatus.TESTING)

    @property
    def gone(self) -> bool:
        return self in (CarStatus.LANDED, CarStatus.CANCELLED)


@dataclass(frozen=True)
class TrainSettings:
    """Per-lane train settings (the config layers resolve them; the planner only reads them).

    `pipeline_limit`: pipelines the lane may run at once (train and side cars together).
    `min_batch`/`max_batch`: bounds of a new car's batch (see the batch rule in `rules.train`).
    `flaky_retries`: how many re-tests an MR gets after failures before it is ejected (0 = none).
    """

    mode: TrainMode = TrainMode.TRAIN
    pipeline_limit: int = 4
    min_batch: int = 2
    max_batch: int = 4
    flaky_retries: int = 0

    def __post_init__(self) -> None:
        if self.pipeline_limit < 1:
            raise ValueError("pipeline_limit must be at least 1")
        if not 1 <= self.min_batch <= self.max_batch:
            raise ValueError("min_batch must be at least 1 and at most max_batch")
        if self.flaky_retries < 0:
            raise ValueError("flaky_retries must not be negative")

    def effective(self) -> TrainSettings:
        """Serial mode is a train of one car of one MR, so one code path serves both modes."""
        if self.mode is TrainMode.SERIAL:
            return replace(self, pipeline_limit=1, min_batch=1, max_batch=1)
        return self


@dataclass(frozen=True)
class QueuedMr:
    """One queued MR of the lane. `mergeable`: the rules let it merge now (not draft, approved…).

    `flaky_retries`: how many times it was re-tested after a failed pipeline since it last passed
    one: the executor adds 1 for each rider of a `StartSideCar` or `RetryCar` it carries out, and
    sets it back to 0 when a car carrying it passes. The executor should also count each re-test
    whose car then passes as a flaky failure (a metric).
    """

    entry_id: EntryId
    iid: int
    head_sha: str
    priority: Priority = Priority.NORMAL
    sequence: int = 0
    mergeable: bool = True
    flaky_retries: int = 0

    @property
    def merge_order(self) -> tuple[int, int]:
        """Sort key: more urgent first, then first come."""
        return (-int(self.priority), self.sequence)


@dataclass(frozen=True)
class Rider:
    """An MR as a car carries it: the head commit the car was built with."""

    entry_id: EntryId
    head_sha: str


@dataclass(frozen=True)
class Car:
    """A tested tree. A train car: the tree of the car ahead (or `base_sha`, for the front car)
    plus `riders`. A side car (`side=True`, bisection): `base_sha` plus `riders`, never landed;
    it also `held` MRs out of the train until its result says what they are.

    `suspects_proven`: the side car's riders and held MRs are known to hold a broken MR (a failed
    pipeline showed it on a base that passed), so if the riders pass the held ones are guilty.
    `proof_pipeline`: the failed pipeline that sent these MRs to the side. `attempts`: pipelines
    run for this car (1 + retries), for status and metrics; the planner does not read it.
    """

    car_id: CarId
    riders: tuple[Rider, ...]
    status: CarStatus
    base_sha: str
    after_car: CarId | None = None
    pipeline_id: int | None = None
    attempts: int = 1
    side: bool = False
    held: tuple[Rider, ...] = ()
    suspects_proven: bool = False
    proof_pipeline: int | None = None

    @property
    def entry_ids(self) -> tuple[EntryId, ...]:
        return tuple(r.entry_id for r in self.riders)

    @property
    def held_ids(self) -> tuple[EntryId, ...]:
        return tuple(r.entry_id for r in self.held)


@dataclass(frozen=True)
class TrainSnapshot:
    """Everything `plan()` knows about one lane, read fresh before each planning round.

    `train`: the train's cars in position order, front first (landed and cancelled cars may be
    left out). `side_cars`: bisection cars. `next_car_id`: the id the planner gives its first new
    car (then +1 each); the executor stores cars under these ids.
    """

    target_head: str
    entries: tuple[QueuedMr, ...]
    train: tuple[Car, ...] = ()
    side_cars: tuple[Car, ...] = ()
    settings: TrainSettings = field(default_factory=TrainSettings)
    next_car_id: CarId = 1
