"""Table tests of the merge-train planner: one snapshot in, the exact list of actions out."""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Iterable
from typing import Any

import pytest

from merge_assist.rules.model import Priority
from merge_assist.rules.train import explain, plan
from merge_assist.rules.train_actions import (Action, BuildCar, DropCar, Eject, LandCar, RetryCar, StartSideCar,
                                              Wait)
from merge_assist.rules.train_state import (Car, CarStatus, QueuedMr, Rider, TrainMode, TrainSettings,
                                            TrainSnapshot)

HEAD = "target0"
TESTING, PASSED, FAILED = CarStatus.TESTING, CarStatus.PASSED, CarStatus.FAILED


def mr(n: int, **fields: Any) -> QueuedMr:
    return replace(QueuedMr(entry_id=n, iid=100 + n, head_sha=f"h{n}", sequence=n), **fields)


def riders(*ns: int) -> tuple[Rider, ...]:
    return tuple(Rider(n, f"h{n}") for n in ns)


def car(car_id: int, mrs: tuple[int, ...], status: CarStatus = TESTING, after: int | None = None,
        **fields: Any) -> Car:
    return Car(car_id, riders(*mrs), status, HEAD, after_car=after, pipeline_id=900 + car_id, **fields)


def side(car_id: int, mrs: tuple[int, ...], status: CarStatus = TESTING, held: tuple[int, ...] = (),
         proven: bool = True, proof: int | None = 800) -> Car:
    return car(car_id, mrs, status, side=True, held=riders(*held), suspects_proven=proven, proof_pipeline=proof)


def snapshot(entries: Iterable[int | QueuedMr], train: tuple[Car, ...] = (),
             side_cars: tuple[Car, ...] = (), next_car_id: int = 10, head: str = HEAD,
             **settings: Any) -> TrainSnapshot:
    queued = tuple(e if isinstance(e, QueuedMr) else mr(e) for e in entries)
    return TrainSnapshot(head, queued, train, side_cars, TrainSettings(**settings), next_car_id)


def build(car_id: int, mrs: tuple[int, ...], after: int | None, head: str = HEAD) -> BuildCar:
    return BuildCar(car_id, riders(*mrs), after, head)


def start_side(car_id: int, mrs: tuple[int, ...], held: tuple[int, ...], proven: bool, proof: int | None,
               head: str = HEAD) -> StartSideCar:
    return StartSideCar(car_id, riders(*mrs), riders(*held), head, proven, proof)


def waits(actions: list[Action]) -> bool:
    return len(actions) == 1 and isinstance(actions[0], Wait)


CASES: list[tuple[str, TrainSnapshot, list[Action]]] = [
    # -- cars: tree = target + cars ahead + own MRs, in parallel up to the limit --------------
    ("an idle lane admits one MR at once, on the target head",
     snapshot([1]), [build(10, (1,), None)]),
    ("each car is built on the car ahead, up to the pipeline limit",
     snapshot(range(1, 9), pipeline_limit=4),
     [build(10, (1, 2), None), build(11, (3, 4), 10), build(12, (5, 6), 11), build(13, (7, 8), 12)]),
    ("new cars extend the train behind the cars already testing",
     snapshot(range(1, 5), train=(car(1, (1, 2)),)), [build(10, (3, 4), 1)]),
    ("no car beyond the pipeline limit, side cars included",
     snapshot(range(1, 6), train=(car(1, (1,)),), side_cars=(side(2, (2,)),), pipeline_limit=2),
     [Wait("all 2 pipelines of the lane are busy")]),
    # -- batch sizing ------------------------------------------------------------------------
    ("a lone waiting MR waits for a partner while the train runs",
     snapshot([1, 2], train=(car(1, (1,)),)),
     [Wait("waiting for 2 MRs to batch or for the train to empty")]),
    ("batches grow when more MRs wait than free slots hold as pairs: ceil(7 / 2) = 4",
     snapshot(range(1, 9), train=(car(1, (1,)),), pipeline_limit=3),
     [build(10, (2, 3, 4, 5), 1), build(11, (6, 7, 8), 10)]),
    ("batches never exceed max_batch",
     snapshot(range(1, 12), pipeline_limit=1, max_batch=3), [build(10, (1, 2, 3), None)]),
    ("min_batch 1 gives single cars while slots are free",
     snapshot(range(1, 4), min_batch=1), [build(10, (1,), None), build(11, (2,), 10), build(12, (3,), 11)]),
    ("MRs the rules do not let merge now stay out of cars",
     snapshot([mr(1, mergeable=False), mr(2), mr(3)]), [build(10, (2, 3), None)]),
    # -- landing ---------------------------------------------------------------------------
    ("a passed car behind a testing one does not land",
     snapshot(range(1, 5), train=(car(1, (1, 2)), car(2, (3, 4), PASSED, after=1))),
     [Wait("every queued MR is in a car under test")]),
    ("passed cars land front first, in order",
     snapshot(range(1, 5), train=(car(1, (1, 2), PASSED), car(2, (3, 4), PASSED, after=1))),
     [LandCar(1), LandCar(2)]),
    ("cars behind the landing ones go on; new cars extend the train",
     snapshot(range(1, 7), train=(car(1, (1, 2), PASSED), car(2, (3, 4), after=1))),
     [LandCar(1), build(10, (5, 6), 2)]),
    # -- failures ----------------------------------------------------------------------------
    ("a lone MR failing on a passed base is ejected with its pipeline; cars behind dropped (rebuilt on the "
     "new target head in the next round)",
     snapshot(range(1, 6), train=(car(1, (1, 2), PASSED), car(2, (3,), FAILED, after=1),
                                  car(3, (4, 5), after=2))),
     [DropCar(3, "rebuilt without the MRs of failed car 2"), DropCar(2, "!103 is broken"),
      Eject(3, "pipeline 902 failed with it as the only untested change", 902), LandCar(1)]),
    ("a failed batch is bisected on a side car while the train goes on without it",
     snapshot(range(1, 8), train=(car(1, (1, 2), FAILED), car(2, (3, 4), after=1))),
     [DropCar(2, "rebuilt without the MRs of failed car 1"),
      DropCar(1, "its MRs are being tested on a side car"), start_side(10, (1,), (2,), True, 901),
      build(11, (3, 4), None), build(12, (5, 6), 11)]),
    ("a car failing (at its first failed job) while a car ahead still runs: cars ahead untouched, "
     "its MRs re-tested without deduction",
     snapshot(range(1, 7), train=(car(1, (1, 2)), car(2, (3, 4), FAILED, after=1), car(3, (5, 6), after=2))),
     [DropCar(3, "rebuilt without the MRs of failed car 2"),
      DropCar(2, "its MRs are being tested on a side car"), start_side(10, (3,), (4,), False, 902),
      build(11, (5, 6), 1)]),
    ("a failed car with no free slot for its side car keeps its MRs and blocks the train",
     snapshot(range(1, 8), train=(car(1, (1, 2)), car(2, (3, 4), FAILED, after=1), car(3, (5, 6), after=2)),
              side_cars=(side(4, (7,)),), pipeline_limit=2),
     [DropCar(3, "rebuilt without the MRs of failed car 2")]),
    ("a car that could not be built (merge conflict) is a failure without a pipeline",
     snapshot([1], train=(replace(car(1, (1,), FAILED), pipeline_id=None),)),
     [DropCar(1, "!101 is broken"),
      Eject(1, "building the commit (a merge conflict) failed with it as the only untested change", None)]),
    # -- flaky retries -----------------------------------------------------------------------
    ("a lone failing MR with a flaky retry left is re-tested alone, not ejected",
     snapshot(range(1, 4), train=(car(1, (1,), FAILED), car(2, (2, 3), after=1)), flaky_retries=1),
     [DropCar(2, "rebuilt without the MRs of failed car 1"),
      DropCar(1, "its MRs are being tested on a side car"), start_side(10, (1,), (), True, 901),
      build(11, (2, 3), None)]),
    ("an MR whose retries are used up is ejected",
     snapshot([mr(1, flaky_retries=1)], train=(car(1, (1,), FAILED),), flaky_retries=1),
     [DropCar(1, "!101 is broken"), Eject(1, "pipeline 901 failed with it as the only untested change", 901)]),
    ("a failed side car of one MR holding nothing is retried in place",
     snapshot([1], side_cars=(side(1, (1,), FAILED),), flaky_retries=1), [RetryCar(1)]),
    ("serial mode retries the failed car in place",
     snapshot([1, 2], train=(car(1, (1,), FAILED),), mode=TrainMode.SERIAL, flaky_retries=1), [RetryCar(1)]),
    # -- bisection on side cars --------------------------------------------------------------
    ("a side car that passed lets its MRs rejoin the train",
     snapshot([1, 2, 3], train=(car(1, (2,)),), side_cars=(side(2, (1,), PASSED),)),
     [DropCar(2, "passed alone; its MRs rejoin the train"), build(10, (1, 3), 1)]),
    ("when the tested half passes, a proven held MR is guilty and ejected",
     snapshot([1, 2], side_cars=(side(2, (1,), PASSED, held=(2,), proof=777),)),
     [DropCar(2, "!102 is broken"),
      Eject(2, "pipeline 777 failed with it and MRs that then passed without it (pipeline 902)", 777),
      build(10, (1,), None)]),
    ("when the tested half passes, larger proven held halves are bisected further",
     snapshot(range(1, 5), side_cars=(side(2, (1,), PASSED, held=(2, 3, 4), proof=777),)),
     [DropCar(2, "bisection goes on"), start_side(10, (2, 3), (4,), True, 777), build(11, (1,), None)]),
    ("unproven held MRs are tested, not deduced guilty",
     snapshot([1, 2], side_cars=(side(2, (1,), PASSED, held=(2,), proven=False, proof=777),)),
     [DropCar(2, "bisection goes on"), start_side(10, (2,), (), False, 777), build(11, (1,), None)]),
    ("a failed side half is split again and the held MRs rejoin",
     snapshot(range(1, 5), side_cars=(side(2, (1, 2), FAILED, held=(3, 4)),)),
     [DropCar(2, "bisection goes on"), start_side(10, (1,), (2,), True, 902), build(11, (3, 4), None)]),
    ("a failed side car of one MR ejects it with that pipeline",
     snapshot([1, 2], side_cars=(side(2, (1,), FAILED, held=(2,)),)),
     [DropCar(2, "!101 is broken"), Eject(1, "pipeline 902 failed with it as the only untested change", 902),
      build(10, (2,), None)]),
    ("a side car whose MR changed is dropped and its MRs rejoin",
     snapshot([1, mr(2, head_sha="h2b")], side_cars=(side(2, (1,), held=(2,)),)),
     [DropCar(2, "!102 has new commits; its MRs rejoin the train"),
      BuildCar(10, (Rider(1, "h1"), Rider(2, "h2b")), None, HEAD)]),
    # -- changes to queued MRs and to the target -----------------------------------------------
    ("a cancelled MR: cars from its position on are rebuilt, cars ahead untouched",
     snapshot([1, 2, 5, 6], train=(car(1, (1, 2)), car(2, (3, 4), after=1), car(3, (5, 6), after=2))),
     [DropCar(2, "entry 3 left the queue"), DropCar(3, "car 2 ahead of it was dropped"),
      build(10, (5, 6), 1)]),
    ("a push to a queued MR rebuilds from its car",
     snapshot([1, 2, mr(3, head_sha="h3b"), 4], train=(car(1, (1, 2)), car(2, (3, 4), after=1))),
     [DropCar(2, "!103 has new commits"), BuildCar(10, (Rider(3, "h3b"), Rider(4, "h4")), 1, HEAD)]),
    ("a draft (cannot merge now) rebuilds from its car without it",
     snapshot([1, 2, mr(3, mergeable=False), 4], train=(car(1, (1, 2)), car(2, (3, 4), after=1))),
     [DropCar(2, "!103 cannot merge now")]),
    ("a push to the target by someone else rebuilds every car not landed; side cars go on",
     snapshot(range(1, 6), train=(car(1, (1, 2), PASSED), car(2, (3, 4), after=1)),
              side_cars=(side(3, (5,)),), head="target1"),
     [DropCar(1, "the target branch moved"), DropCar(2, "car 1 ahead of it was dropped"),
      build(10, (1, 2), None, "target1"), build(11, (3, 4), 10, "target1")]),
    ("an urgent MR rides at the front of the next car; cars built ahead are not restarted",
     snapshot([1, 2, 3, mr(4, priority=Priority.URGENT)], train=(car(1, (1, 2)),)),
     [build(10, (4, 3), 1)]),
    # -- serial mode -------------------------------------------------------------------------
    ("serial mode: one car of one MR",
     snapshot(range(1, 5), mode=TrainMode.SERIAL), [build(10, (1,), None)]),
    ("serial mode: nothing else while it runs",
     snapshot(range(1, 5), train=(car(1, (1,)),), mode=TrainMode.SERIAL),
     [Wait("all 1 pipelines of the lane are busy")]),
    ("serial mode: a failure ejects at once",
     snapshot(range(1, 3), train=(car(1, (1,), FAILED),), mode=TrainMode.SERIAL),
     [DropCar(1, "!101 is broken"), Eject(1, "pipeline 901 failed with it as the only untested change", 901),
      build(10, (2,), None)]),
]


@pytest.mark.parametrize(("name", "given", "expected"), CASES, ids=[case[0] for case in CASES])
def test_plan(name: str, given: TrainSnapshot, expected: list[Action]) -> None:
    assert plan(given) == expected


def test_plan_is_deterministic_and_does_not_change_its_input() -> None:
    given = snapshot(range(1, 8), train=(car(1, (1, 2), FAILED), car(2, (3, 4), after=1)))
    before = repr(given)
    assert plan(given) == plan(given)
    assert repr(given) == before


def test_empty_queue_waits() -> None:
    assert plan(snapshot(())) == [Wait("the queue is empty")]


@pytest.mark.parametrize("bad", [{"pipeline_limit": 0}, {"min_batch": 0}, {"min_batch": 3, "max_batch": 2},
                                 {"flaky_retries": -1}])
def test_settings_refuse_bad_values_naming_the_key(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainSettings(**bad)


def test_every_action_describes_itself() -> None:
    actions: list[Action] = [build(1, (1, 2), None), build(2, (3,), 1), start_side(3, (1,), (2,), True, 5),
                             LandCar(1), DropCar(1, "why"), RetryCar(1), Eject(1, "broken", 5), Wait("idle")]
    texts = [action.describe() for action in actions]
    assert all(texts) and len(set(texts)) == len(texts)
    assert "holding entry 2" in texts[2] and "on car 1" in texts[1]


def test_landed_and_cancelled_cars_are_ignored() -> None:
    given = snapshot([3, 4], train=(car(1, (1, 2), CarStatus.LANDED),), side_cars=(side(2, (5,), CarStatus.CANCELLED),))
    assert plan(given) == [build(10, (3, 4), None)]


def test_a_plan_carried_out_needs_nothing_more() -> None:
    """After the actions of a failure are applied, the next round only waits (no repeated work)."""
    first = plan(snapshot(range(1, 7), train=(car(1, (1, 2), FAILED), car(2, (3, 4), after=1))))
    assert [type(a) for a in first] == [DropCar, DropCar, StartSideCar, BuildCar, BuildCar]
    after = snapshot(range(1, 7), train=(car(11, (3, 4)), car(12, (5, 6), after=11)),
                     side_cars=(side(10, (1,), held=(2,), proof=901),), next_car_id=13)
    assert waits(plan(after))


def test_explain_says_where_each_mr_is_and_why_it_waits() -> None:
    given = snapshot([1, 2, 3, 4, mr(5, mergeable=False), 6], train=(car(1, (1, 2)),),
                     side_cars=(side(2, (3,), held=(4,)),), pipeline_limit=2)
    assert explain(given) == {
        1: "car 1 (position 1, testing)", 2: "car 1 (position 1, testing)",
        3: "tested alone on side car 2 (testing) to find a broken MR",
        4: "held out of the train until side car 2 reports",
        5: "waiting: the rules do not let it merge now",
        6: "wait: all 2 pipelines of the lane are busy",
    }
