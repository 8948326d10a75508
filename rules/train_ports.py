"""What the train executor needs besides the GitLab port: car records, a car store and git.

A `CarRecord` is the planner's `Car` plus what only the executor needs (the commit it built, its
temporary branch, its pipeline, the rebased MR heads to push when it lands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from merge_assist.rules.model import LaneKey, Project
from merge_assist.rules.train_state import Car, CarId, CarStatus


@dataclass(frozen=True)
class CarRecord:
    car: Car
    commit_sha: str | None = None
    branch: str | None = None
    pipeline_url: str | None = None
    source_updates: dict[str, str] = field(default_factory=dict)
    """Source branch → the rebased (or squashed) head this car carries for it."""
    reason: str = ""


class CarStore(Protocol):
    def lane_cars(self, lane: LaneKey) -> list[CarRecord]:
        """Cars that are not gone (landed or cancelled), train cars in position order."""
        ...

    def next_car_id(self, lane: LaneKey) -> CarId: ...

    def add_car(self, lane: LaneKey, record: CarRecord, *, fence: int) -> None: ...

    def update_car(self, lane: LaneKey, car_id: CarId, *, fence: int, status: CarStatus | None = None,
                   reason: str | None = None, **fields: object) -> None:
        """Change a car's status or fields (pipeline_id, after_car, base_sha, attempts…), audited."""
        ...

    def record_pipeline(self, lane: LaneKey, car_id: CarId, status: CarStatus, reason: str,
                        **fields: object) -> bool:
        """Compare-and-set a running car's pipeline result without the lease; False if it stopped running."""
        ...

    def lane_for_commit(self, project_id: int, sha: str) -> LaneKey | None:
        """The lane whose live car is that commit (pipeline and job hooks find their car)."""
        ...


@dataclass(frozen=True)
class RiderSource:
    """An MR as the car builder needs it."""

    entry_id: int
    iid: int
    title: str
    source_branch: str
    head_sha: str
    squash: bool = False


@dataclass(frozen=True)
class BuiltCar:
    commit_sha: str
    source_updates: dict[str, str]


@dataclass(frozen=True)
class Conflict:
    """A rider does not apply on the car's base (a conflict with the target or the MRs ahead)."""

    entry_id: int
    detail: str


class TargetMoved(Exception):
    """The fast-forward push of a car to the target was refused: the target moved meanwhile."""


class PushRefused(Exception):
    """GitLab refused a push for another reason (permissions, protected branch rules)."""


class CarBuilder(Protocol):
    """Real git in a cached clone per project (adapters/git_workspace.py)."""

    def build(self, project: Project, base_sha: str, riders: Sequence[RiderSource], branch: str,
              target_branch: str) -> BuiltCar | Conflict:
        """Commit base + riders (by the project's merge method), push it to `branch`."""
        ...

    def land(self, project: Project, target_branch: str, commit_sha: str, source_updates: dict[str, str],
             *, target_pipeline: bool = True) -> None:
        """Push each rebased head to its source branch (no pipeline), then fast-forward the target to
        `commit_sha` (with no pipeline unless `target_pipeline`); raises TargetMoved or PushRefused."""
        ...

    def rider_commits(self, project: Project, commit_sha: str, riders: Sequence[RiderSource],
                      source_updates: dict[str, str]) -> dict[int, str]:
        """Entry id → the commit of car `commit_sha` that brought the rider in: what GitLab reports as
        the MR's merge commit once the car has landed (each rider of a batch has its own)."""
        ...

    def delete_branches(self, project: Project, branches: Sequence[str]) -> None:
        """Delete temporary branches; absent ones are fine."""
        ...
