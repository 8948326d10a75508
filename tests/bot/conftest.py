"""A web-only runtime (no GitLab, no workers) on a throw-away SQLite file, and a TestClient for it."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from merge_assist.bot.app import create_app
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Settings


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    """Override in a test module to set e.g. secrets."""
    return {}


@pytest.fixture
def runtime(tmp_path, runtime_settings: dict[str, Any]) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    runtime = Runtime.build(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", **runtime_settings),
                            run_workers=False)
    yield runtime
    runtime.stop()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as client:
        yield client
