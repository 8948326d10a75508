"""Managed GitLab projects: per-project webhook secrets (as digests), settings and pause."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from merge_assist.storage.db import Database
from merge_assist.storage.models import ManagedProject


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ProjectView:
    id: int
    path: str
    has_own_secret: bool
    settings: dict[str, Any]
    paused: bool


class ProjectRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def register(self, project_id: int, path: str, *, webhook_secret: str | None = None,
                 settings: dict[str, Any] | None = None) -> ProjectView:
        try:
            return self._register(project_id, path, webhook_secret, settings)
        except IntegrityError:  # registered concurrently by another worker: update that row
            return self._register(project_id, path, webhook_secret, settings)

    def _register(self, project_id: int, path: str, webhook_secret: str | None,
                  settings: dict[str, Any] | None) -> ProjectView:
        with self._db.session() as session:
            row = session.get(ManagedProject, project_id)
            if row is None:
                row = ManagedProject(id=project_id, path=path, settings={}, paused=False)
                session.add(row)
            row.path = path
            if webhook_secret is not None:
                row.webhook_secret_sha256 = secret_digest(webhook_secret)
            if settings is not None:
                row.settings = dict(settings)
            session.flush()
            return self._view(row)

    def get(self, project_id: int) -> ProjectView | None:
        with self._db.session() as session:
            row = session.get(ManagedProject, project_id)
            return self._view(row) if row else None

    def all_projects(self) -> list[ProjectView]:
        with self._db.session() as session:
            return [self._view(row) for row in session.scalars(select(ManagedProject).order_by(ManagedProject.id))]

    def by_path(self, path: str) -> ProjectView | None:
        with self._db.session() as session:
            row = session.scalar(select(ManagedProject).where(ManagedProject.path == path))
            return self._view(row) if row else None

    def secret_digests(self) -> dict[int, str]:
        """Project id → digest of its own webhook secret (for the webhook's cache)."""
        with self._db.session() as session:
            rows = session.execute(select(ManagedProject.id, ManagedProject.webhook_secret_sha256)
                                   .where(ManagedProject.webhook_secret_sha256.is_not(None)))
            return {pid: digest for pid, digest in rows if digest is not None}

    def set_paused(self, project_id: int, paused: bool) -> None:
        with self._db.session() as session:
            row = session.get(ManagedProject, project_id)
            if row is None:
                raise KeyError(project_id)
            row.paused = paused

    @staticmethod
    def _view(row: ManagedProject) -> ProjectView:
        return ProjectView(row.id, row.path, row.webhook_secret_sha256 is not None, dict(row.settings or {}), row.paused)
