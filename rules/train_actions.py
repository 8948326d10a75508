"""What the merge-train scheduler asks the executor to do: one frozen class per kind of action.

The executor performs a plan's actions in list order and stops at the first one that fails (then
reads a fresh snapshot and plans again). `describe()` is the sentence for logs and the status page.
"""

from __future__ import annotations

from dataclasses import dataclass

from merge_assist.rules.train_state import CarId, EntryId, Rider


@dataclass(frozen=True)
class Action:
    """Common base of every action kind."""

    def describe(self) -> str:
        raise NotImplementedError


def _mrs(riders: tuple[Rider, ...]) -> str:
    return ", ".join(f"entry {r.entry_id}" for r in riders) or "nothing"


@dataclass(frozen=True)
class BuildCar(Action):
    """Make the commit `after_car`'s commit (or `base_sha` when `after_car` is None) + `riders` at
    their `head_sha`, push it to a temporary branch, start its pipeline; store the car at the end
    of the train as `car_id`, status building (testing once the pipeline runs)."""

    car_id: CarId
    riders: tuple[Rider, ...]
    after_car: CarId | None
    base_sha: str

    def describe(self) -> str:
        on = f"car {self.after_car}" if self.after_car is not None else f"target {self.base_sha[:8]}"
        return f"build car {self.car_id}: {_mrs(self.riders)} on {on}"


@dataclass(frozen=True)
class StartSideCar(Action):
    """Test `riders` alone on `base_sha` (the target head) as side car `car_id`; keep `held` out of
    the train until it reports. Every side car re-tests MRs after a failure, so the executor adds 1
    to each rider's `flaky_retries`."""

    car_id: CarId
    riders: tuple[Rider, ...]
    held: tuple[Rider, ...]
    base_sha: str
    suspects_proven: bool
    proof_pipeline: int | None

    def describe(self) -> str:
        held = f", holding {_mrs(self.held)}" if self.held else ""
        return f"side car {self.car_id}: test {_mrs(self.riders)} alone{held}"


@dataclass(frozen=True)
class LandCar(Action):
    """Make the target's tree the car's tested tree (verify it; refuse otherwise), mark the car
    landed and its MRs merged; the car behind becomes the front: its `after_car` becomes None and
    its `base_sha` the new target head."""

    car_id: CarId

    def describe(self) -> str:
        return f"land car {self.car_id}"


@dataclass(frozen=True)
class DropCar(Action):
    """Forget a car that no longer matters: cancel its pipeline if it still runs, delete its
    temporary branch, remove it from the lane. Its MRs stay queued unless another action says."""

    car_id: CarId
    reason: str

    def describe(self) -> str:
        return f"drop car {self.car_id}: {self.reason}"


@dataclass(frozen=True)
class RetryCar(Action):
    """Run the failed car's pipeline again on the same commit (status testing, attempts + 1) and
    add 1 to its MR's `flaky_retries`."""

    car_id: CarId

    def describe(self) -> str:
        return f"retry car {self.car_id} (the failure may be flaky)"


@dataclass(frozen=True)
class Eject(Action):
    """Remove an MR proven broken from the queue and tell its author which pipeline proved it."""

    entry_id: EntryId
    reason: str
    proof_pipeline: int | None

    def describe(self) -> str:
        return f"eject entry {self.entry_id}: {self.reason}"


@dataclass(frozen=True)
class Wait(Action):
    """Nothing to do until an event (pipeline, job, push, MR change) arrives."""

    reason: str

    def describe(self) -> str:
        return f"wait: {self.reason}"
