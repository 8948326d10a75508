"""Persistence: SQLAlchemy models, Alembic migrations and repositories implementing rules.ports."""

from __future__ import annotations

from dataclasses import dataclass

from merge_assist.storage.audit import AuditRepository
from merge_assist.storage.cars import CarRepository
from merge_assist.storage.db import Database
from merge_assist.storage.deliveries import DeliveryRepository
from merge_assist.storage.projects import ProjectRepository
from merge_assist.storage.queue import QueueRepository
from merge_assist.storage.sessions import SessionRepository, SignInFailures
from merge_assist.storage.users import UserRepository


@dataclass
class Store:
    """Every repository over one database."""

    db: Database
    queue: QueueRepository
    audit: AuditRepository
    users: UserRepository
    projects: ProjectRepository
    deliveries: DeliveryRepository
    cars: CarRepository
    sessions: SessionRepository
    sign_in_failures: SignInFailures

    @classmethod
    def open(cls, url: str) -> "Store":
        db = Database(url)
        return cls(db, QueueRepository(db), AuditRepository(db), UserRepository(db),
                   ProjectRepository(db), DeliveryRepository(db), CarRepository(db), SessionRepository(db),
                   SignInFailures(db))
