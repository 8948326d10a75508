from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from gitlab_sim import Simulator
from tests.e2e.harness import Bot, World, logs, make_world, start_embedded, start_production


@pytest.fixture
def world(sim: Simulator) -> World:
    return make_world(sim)


@pytest.fixture(params=["embedded", "production"])
def bot(request: pytest.FixtureRequest, sim: Simulator, world: World, tmp_path: Path) -> Iterator[Bot]:
    if request.param == "embedded":
        running = start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}")
    else:
        pg_url = request.getfixturevalue("pg_url")
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        workdir = tmp_path / "bot"
        workdir.mkdir()
        running = start_production(sim, world, pg_url, redis_url, prefix, workdir)
    yield running
    running.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(logs(running))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
