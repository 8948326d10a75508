"""The merge-train scheduler of one lane: `plan(snapshot) -> list[Action]`, pure and deterministic.

Like Prow Tide's sync loop, the planner keeps no memory: every round the executor reads the lane
(`TrainSnapshot`: queued MRs, cars, target head, settings), calls `plan()`, and carries out the
actions in order (`rules.train_actions`). Everything the planner must remember between rounds —
which MRs are being bisected, which failure proved what — lives in the cars it asked for.

Executor contract
- Perform the actions in list order; stop at the first that fails and plan again from a fresh
  snapshot. After a plan with any action other than `Wait`, plan again at once; otherwise plan
  again on the next event (pipeline or job status, push, MR change, new or cancelled entry).
- Report a car FAILED as soon as one of its jobs fails; it no longer counts against the limit.
  A car whose commit cannot be built (merge conflict) is FAILED with no `pipeline_id`.
- Store cars under the ids the actions give (`TrainSnapshot.next_car_id` must exceed every id
  used so far); keep train cars in position order; `LandCar` re-parents the next car onto the
  new target head (see `LandCar`).
- Remove an MR from the queue (or mark it not `mergeable`) on cancel, close, draft or a rule
  refusal; a push changes its `head_sha`. The planner then rebuilds the cars from its position on.
- Keep each MR's `flaky_retries` as `QueuedMr` says (+1 per side car or retry, 0 once it passes).

Semantics (each one has a table test in tests/rules/test_train.py)
- A train car's tree is the target head + the MRs of every car ahead + its own riders; cars are
  tested in parallel up to `pipeline_limit` pipelines (train and side cars together).
- Only the front car lands, so a car lands only after every car ahead has landed.
- A car whose tree no longer matches the queue (an MR left, changed, cannot merge now; the target
  moved under the front car) is dropped with every car behind it; the cars ahead are untouched.
- A failed train car leaves the train and every car behind it is rebuilt without its MRs; the
  cars ahead keep running. The failure is *proven* when every car ahead has passed; otherwise
  (a job failed early while a car ahead still runs) its MRs are re-tested without deduction.
- Bisection beside the train: a failed batch's first half is tested alone on the target head on
  a side car, holding the second half out of the train. If the half fails, the held MRs rejoin
  and the half is split again; if it passes, it rejoins, and the held half is guilty when the
  failure was proven (bisected further, or concluded when it is one MR) and re-tested otherwise.
- Concluding on one MR (the only untested change of a failed pipeline): if its `flaky_retries`
  is below the setting it is re-tested alone (the failed side car again when it held nothing,
  else a new side car; in serial mode the car in place), else it is ejected with the pipeline
  that proved it broken. Every side car counts as a re-test, so with `flaky_retries: 1` an MR is
  ejected after two failed pipelines in a row, the last one with it alone on the target.
- Order: priority, then enqueue sequence. A new car takes the first waiting MRs, so an urgent MR
  rides at the front of the next car; cars already built are never restarted for it.
- Batch rule: with F free pipeline slots and W MRs waiting, a new car takes
  clamp(ceil(W / F), min_batch, max_batch) MRs: batches grow beyond min_batch only when more MRs
  wait than F cars of min_batch can carry. A car smaller than min_batch starts only when the
  train is empty (an idle lane admits one MR at once). With min_batch 1 a short queue gets one MR
  per car; the default 2 is what keeps pipelines per merged MR under 0.9 in bench/train_model.py
  (single cars cost about 1.3). Serial mode: one car of one MR at a time.
"""

from __future__ import annotations

import math

from merge_assist.rules.train_actions import (Action, BuildCar, DropCar, Eject, LandCar, RetryCar, StartSideCar,
                                              Wait)
from merge_assist.rules.train_state import (Car, CarId, CarStatus, EntryId, QueuedMr, Rider, TrainMode,
                                            TrainSnapshot)

__all__ = ["explain", "plan"]


def plan(snapshot: TrainSnapshot) -> list[Action]:
    """The actions that bring the lane's train up to date, in the order to perform them."""
    return _Round(snapshot).plan()


def explain(snapshot: TrainSnapshot) -> dict[EntryId, str]:
    """Where each queued MR is and why it waits, for status replies and the dashboard."""
    where: dict[EntryId, str] = {}
    for position, car in enumerate(snapshot.train, start=1):
        for entry_id in car.entry_ids:
            where[entry_id] = f"car {car.car_id} (position {position}, {car.status.value})"
    for car in snapshot.side_cars:
        for entry_id in car.entry_ids:
            where[entry_id] = f"tested alone on side car {car.car_id} ({car.status.value}) to find a broken MR"
        for entry_id in car.held_ids:
            where[entry_id] = f"held out of the train until side car {car.car_id} reports"
    reason = plan(snapshot)[-1]
    for entry in snapshot.entries:
        if entry.entry_id in where:
            continue
        if not entry.mergeable:
            where[entry.entry_id] = "waiting: the rules do not let it merge now"
        else:
            where[entry.entry_id] = reason.describe() if isinstance(reason, Wait) else "waiting for the next car"
    return where


def _halves(riders: tuple[Rider, ...]) -> tuple[tuple[Rider, ...], tuple[Rider, ...]]:
    cut = len(riders) - len(riders) // 2
    return riders[:cut], riders[cut:]


class _Round:
    """One planning round: walks the train, then the side cars, then lands and extends."""

    def __init__(self, snapshot: TrainSnapshot) -> None:
        self.snapshot = snapshot
        self.settings = snapshot.settings.effective()
        self.entries: dict[EntryId, QueuedMr] = {e.entry_id: e for e in snapshot.entries}
        self.actions: list[Action] = []
        self.next_car_id = snapshot.next_car_id
        self.busy: set[EntryId] = set()  # in a kept car, held by a side car, or ejected
        self.running = sum(1 for car in (*snapshot.train, *snapshot.side_cars) if car.status.running)
        self.train: list[Car] = []  # train cars kept, front first
        self.train_blocked = False  # a failed car waits for a free slot; build nothing behind it

    def plan(self) -> list[Action]:
        self._walk_train([car for car in self.snapshot.train if not car.status.gone])
        for car in self.snapshot.side_cars:
            if not car.status.gone:
                self._settle_side_car(car)
        landing = self._land_passed_front()
        self._extend_train(landing)
        return self.actions or [Wait(self._why_waiting())]

    # -- the train ---------------------------------------------------------------------------

    def _walk_train(self, cars: list[Car]) -> None:
        for index, car in enumerate(cars):
            problem = self._train_car_problem(car)
            if problem:
                self._drop_train_from(cars[index:], problem)
                return
            if car.status is CarStatus.FAILED:
                self._drop_train_from(cars[index + 1:], f"rebuilt without the MRs of failed car {car.car_id}")
                proven = all(ahead.status is CarStatus.PASSED for ahead in self.train)
                self._settle_failed_train_car(car, proven)
                return
            self._keep(car)

    def _train_car_problem(self, car: Car) -> str:
        if self.train:
            if car.after_car != self.train[-1].car_id:
                return f"it was not built on car {self.train[-1].car_id}"
        elif car.after_car is not None:
            return f"car {car.after_car} ahead of it is gone"
        elif car.base_sha != self.snapshot.target_head:
            return "the target branch moved"
        return self._riders_problem(car.riders)

    def _riders_problem(self, riders: tuple[Rider, ...]) -> str:
        for rider in riders:
            entry = self.entries.get(rider.entry_id)
            if entry is None:
                return f"entry {rider.entry_id} left the queue"
            if entry.head_sha != rider.head_sha:
                return f"!{entry.iid} has new commits"
            if not entry.mergeable:
                return f"!{entry.iid} cannot merge now"
            if rider.entry_id in self.busy:
                return f"!{entry.iid} is in another car"
        return ""

    def _drop_train_from(self, cars: list[Car], reason: str) -> None:
        for position, car in enumerate(cars):
            self._drop(car, reason if position == 0 else f"car {cars[0].car_id} ahead of it was dropped")

    def _settle_failed_train_car(self, car: Car, proven: bool) -> None:
        if len(car.riders) > 1 or not proven:
            first, rest = _halves(car.riders)
            self._send_aside(car, first, rest, proven, car.pipeline_id)
            return
        in_place = self.settings.mode is TrainMode.SERIAL
        self._conclude(car, car.riders[0], car.pipeline_id, in_place, deduced_from=None)

    def _land_passed_front(self) -> set[CarId]:
        landing: set[CarId] = set()
        for car in self.train:
            if car.status is not CarStatus.PASSED:
                break
            self.actions.append(LandCar(car.car_id))
            landing.add(car.car_id)
        return landing

    def _extend_train(self, landing: set[CarId]) -> None:
        remaining = [car for car in self.train if car.car_id not in landing]
        if self.train_blocked or (self.train and not remaining):
            return  # the next round builds on the new target head
        waiting = sorted((e for e in self.entries.values() if e.mergeable and e.entry_id not in self.busy),
                         key=lambda e: e.merge_order)
        after = remaining[-1].car_id if remaining else None
        while waiting and self._free_slots() > 0:
            size = self._batch_size(len(waiting))
            if len(waiting) < size and after is not None:
                return
            batch, waiting = waiting[:size], waiting[size:]
            car_id = self._new_car_id()
            riders = tuple(Rider(e.entry_id, e.head_sha) for e in batch)
            self.actions.append(BuildCar(car_id, riders, after, self.snapshot.target_head))
            self.running += 1
            after = car_id

    def _batch_size(self, waiting: int) -> int:
        wanted = math.ceil(waiting / self._free_slots())
        return max(self.settings.min_batch, min(self.settings.max_batch, wanted))

    # -- side cars (bisection) ---------------------------------------------------------------

    def _settle_side_car(self, car: Car) -> None:
        problem = self._riders_problem(car.riders + car.held)
        if problem:
            self._drop(car, f"{problem}; its MRs rejoin the train")
        elif car.status.running:
            self._keep(car)
        elif car.status is CarStatus.PASSED and not car.held:
            self._drop(car, "passed alone; its MRs rejoin the train")
        elif car.status is CarStatus.PASSED and car.suspects_proven and len(car.held) == 1:
            self._conclude(car, car.held[0], car.proof_pipeline, in_place=False, deduced_from=car.pipeline_id)
        elif car.status is CarStatus.PASSED:
            first, rest = _halves(car.held)
            self._send_aside(car, first, rest, car.suspects_proven, car.proof_pipeline)
        elif len(car.riders) == 1:
            self._conclude(car, car.riders[0], car.pipeline_id, in_place=not car.held, deduced_from=None)
        else:
            first, rest = _halves(car.riders)
            self._send_aside(car, first, rest, True, car.pipeline_id)

    def _conclude(self, car: Car, suspect: Rider, proof: int | None, in_place: bool,
                  deduced_from: int | None) -> None:
        """`suspect` is the only untested change in failed pipeline `proof`: retry or eject it."""
        entry = self.entries[suspect.entry_id]
        if entry.flaky_retries < self.settings.flaky_retries:
            if in_place:
                self.actions.append(RetryCar(car.car_id))
                self.running += 1
                self._keep(car)
            else:
                self._send_aside(car, (suspect,), (), True, proof)
            return
        failed = f"pipeline {proof}" if proof is not None else "building the commit (a merge conflict)"
        why = f"{failed} failed with it as the only untested change"
        if deduced_from is not None:
            why = f"{failed} failed with it and MRs that then passed without it (pipeline {deduced_from})"
        self._drop(car, f"!{entry.iid} is broken")
        self.actions.append(Eject(entry.entry_id, why, proof))
        self.busy.add(entry.entry_id)

    def _send_aside(self, car: Car, riders: tuple[Rider, ...], held: tuple[Rider, ...], proven: bool,
                    proof: int | None) -> None:
        """Replace finished `car` by a side car testing `riders` alone; keep it while no slot is free."""
        if self._free_slots() <= 0:
            self._keep(car)
            self.train_blocked = self.train_blocked or not car.side
            return
        self._drop(car, "its MRs are being tested on a side car" if not car.side else "bisection goes on")
        side_id = self._new_car_id()
        self.actions.append(StartSideCar(side_id, riders, held, self.snapshot.target_head, proven, proof))
        self.running += 1
        self.busy.update(r.entry_id for r in riders + held)

    # -- bookkeeping -------------------------------------------------------------------------

    def _keep(self, car: Car) -> None:
        self.busy.update(car.entry_ids)
        self.busy.update(car.held_ids)
        if not car.side:
            self.train.append(car)

    def _drop(self, car: Car, reason: str) -> None:
        self.actions.append(DropCar(car.car_id, reason))
        if car.status.running:
            self.running -= 1

    def _free_slots(self) -> int:
        return self.settings.pipeline_limit - self.running

    def _new_car_id(self) -> CarId:
        car_id = self.next_car_id
        self.next_car_id += 1
        return car_id

    def _why_waiting(self) -> str:
        if not self.entries:
            return "the queue is empty"
        if self._free_slots() <= 0:
            return f"all {self.settings.pipeline_limit} pipelines of the lane are busy"
        if self.train_blocked:
            return "a failed car waits for a free pipeline to be bisected"
        if all(entry_id in self.busy for entry_id in self.entries):
            return "every queued MR is in a car under test"
        return f"waiting for {self.settings.min_batch} MRs to batch or for the train to empty"
