"""Train cars: implements rules.train_ports.CarStore. Every write checks the lane's fencing token."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select, update

from merge_assist.rules.errors import LeaseLost
from merge_assist.rules.model import LaneKey
from merge_assist.rules.train_ports import CarRecord
from merge_assist.rules.train_state import Car, CarId, CarStatus, Rider
from merge_assist.storage.db import Database
from merge_assist.storage.models import AuditRecord, Lane, TrainCarRow
from merge_assist.storage.types import utcnow

GONE = [CarStatus.LANDED.value, CarStatus.CANCELLED.value]
UPDATABLE = {"pipeline_id", "pipeline_url", "after_car", "base_sha", "attempts", "commit_sha", "branch",
             "source_updates"}


def _riders(raw: list[Any]) -> tuple[Rider, ...]:
    return tuple(Rider(int(entry_id), str(sha)) for entry_id, sha in raw)


def _record(row: TrainCarRow) -> CarRecord:
    car = Car(car_id=row.car_id, riders=_riders(row.riders), status=CarStatus(row.status), base_sha=row.base_sha,
              after_car=row.after_car, pipeline_id=row.pipeline_id, attempts=row.attempts, side=row.side,
              held=_riders(row.held), suspects_proven=row.suspects_proven, proof_pipeline=row.proof_pipeline)
    return CarRecord(car, row.commit_sha, row.branch, row.pipeline_url, dict(row.source_updates or {}), row.reason)


def _audit(lane: LaneKey, car_id: CarId, outcome: str, detail: str) -> AuditRecord:
    return AuditRecord(actor="merge-assist", channel="system", action="car",
                       target=f"{lane.project_id}:{lane.target_branch}#{car_id}", outcome=outcome,
                       detail=detail[:4000])


class CarRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def lane_cars(self, lane: LaneKey) -> list[CarRecord]:
        with self._db.session() as session:
            rows = session.scalars(select(TrainCarRow).where(
                TrainCarRow.project_id == lane.project_id, TrainCarRow.target_branch == lane.target_branch,
                TrainCarRow.status.not_in(GONE)).order_by(TrainCarRow.car_id))
            return [_record(row) for row in rows]

    def next_car_id(self, lane: LaneKey) -> CarId:
        with self._db.session() as session:
            highest = session.scalar(select(func.max(TrainCarRow.car_id)).where(
                TrainCarRow.project_id == lane.project_id, TrainCarRow.target_branch == lane.target_branch))
            return int(highest or 0) + 1

    def add_car(self, lane: LaneKey, record: CarRecord, *, fence: int) -> None:
        car = record.car
        with self._db.session() as session:
            self._check_fence(session, lane, fence)
            session.add(TrainCarRow(
                project_id=lane.project_id, target_branch=lane.target_branch, car_id=car.car_id,
                status=car.status.value, side=car.side, after_car=car.after_car, base_sha=car.base_sha,
                riders=[[r.entry_id, r.head_sha] for r in car.riders], held=[[r.entry_id, r.head_sha] for r in car.held],
                suspects_proven=car.suspects_proven, proof_pipeline=car.proof_pipeline, commit_sha=record.commit_sha,
                branch=record.branch, pipeline_id=car.pipeline_id, attempts=car.attempts,
                source_updates=record.source_updates, reason=record.reason,
            ))
            session.add(_audit(lane, car.car_id, car.status.value, record.reason))

    def update_car(self, lane: LaneKey, car_id: CarId, *, fence: int, status: CarStatus | None = None,
                   reason: str | None = None, **fields: object) -> None:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise TypeError(f"cannot set {sorted(unknown)} on a car")
        values: dict[str, object] = {**fields, "updated_at": utcnow()}
        if status is not None:
            values["status"] = status.value
        if reason is not None:
            values["reason"] = reason
        with self._db.session() as session:
            self._check_fence(session, lane, fence)
            session.execute(update(TrainCarRow).where(
                TrainCarRow.project_id == lane.project_id, TrainCarRow.target_branch == lane.target_branch,
                TrainCarRow.car_id == car_id).values(**values))
            if status is not None:
                session.add(_audit(lane, car_id, status.value, reason or ""))

    def record_pipeline(self, lane: LaneKey, car_id: CarId, status: CarStatus, reason: str,
                        **fields: object) -> bool:
        """A pipeline's result for a running car: a compare-and-set on the car still running, with no
        lease needed, so a result that arrives while a worker drives the lane is never lost."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise TypeError(f"cannot set {sorted(unknown)} on a car")
        with self._db.session() as session:
            moved = session.execute(update(TrainCarRow).where(
                TrainCarRow.project_id == lane.project_id, TrainCarRow.target_branch == lane.target_branch,
                TrainCarRow.car_id == car_id,
                TrainCarRow.status.in_([CarStatus.BUILDING.value, CarStatus.TESTING.value]),
            ).values(status=status.value, reason=reason, updated_at=utcnow(), **fields))
            if not int(getattr(moved, "rowcount", 0)):
                return False
            session.add(_audit(lane, car_id, status.value, reason))
            return True

    def lane_for_commit(self, project_id: int, sha: str) -> LaneKey | None:
        with self._db.session() as session:
            row = session.execute(select(TrainCarRow.project_id, TrainCarRow.target_branch).where(
                TrainCarRow.project_id == project_id, TrainCarRow.commit_sha == sha,
                TrainCarRow.status.not_in(GONE)).limit(1)).first()
            return LaneKey(int(row[0]), str(row[1])) if row else None

    @staticmethod
    def _check_fence(session: Any, lane: LaneKey, fence: int) -> None:
        held = session.scalar(select(exists().where(
            Lane.project_id == lane.project_id, Lane.target_branch == lane.target_branch, Lane.lease_token == fence)))
        if not held:
            raise LeaseLost(f"lane {lane} lease moved on")
