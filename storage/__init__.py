"""Persistence: SQLAlchemy models, Alembic migrations and repositories implementing rules.ports."""

from __future__ import annotations

from dataclasses import dataclass

from storage.audit import AuditRepository
from storage.db import Database
from storage.deliveries import DeliveryRepository
from storage.projects import ProjectRepository
from storage.queue import QueueRepository
from storage.users import UserRepository


@dataclass
class Store:
    """Every repository over one database."""

    db: Database
    queue: QueueRepository
    audit: AuditRepository
    users: UserRepository
    projects: ProjectRepository
    deliveries: DeliveryRepository

    @classmethod
    def open(cls, url: str) -> "Store":
        db = Database(url)
        return cls(db, QueueRepository(db), AuditRepository(db), UserRepository(db),
                   ProjectRepository(db), DeliveryRepository(db))
