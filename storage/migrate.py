"""Schema migrations (Alembic) and the check that a service's schema is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from merge_assist.storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6D657267  # "merg": any constant no other application on the database uses


class SchemaOutdated(RuntimeError):
    """The database schema is not at the code's head revision."""


def _config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def head_revision(db: Database) -> str:
    heads = ScriptDirectory.from_config(_config(db)).get_heads()
    return heads[0]


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade; on PostgreSQL under an advisory lock, so that every pod may run it at start-up
    (Kubernetes init containers): the first one migrates, the others wait and find it done."""
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config = _config(db)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(db: Database, revision: str = "base") -> None:
    with db.engine.begin() as conn:
        config = _config(db)
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def ensure_current(db: Database) -> None:
    """Raise SchemaOutdated with a message saying what to run."""
    current, head = current_revision(db), head_revision(db)
    if current != head:
        raise SchemaOutdated(
            f"database schema is at {current or 'nothing (empty database)'}, this version needs {head}; "
            "run `merge-assist migrate` first"
        )
