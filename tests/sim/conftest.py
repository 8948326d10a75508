"""Fixtures: a started simulator on a virtual clock and a small populated world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitlab_sim import SimClock, Simulator, WebhookSettings
from gitlab_sim.sample import Team, make_team
from gitlab_sim.state import MAINTAINER


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path / "sim", SimClock.virtual_clock(), rebase_delay=0.01,
                          webhook_settings=WebhookSettings(backoff=0.01, timeout=2.0))
    simulator.start()
    yield simulator
    simulator.stop()


World = Team


@pytest.fixture
def world(sim: Simulator) -> Team:
    return make_team(sim, merge_access_level=MAINTAINER, files={"README.md": "hello\n", "app.py": "x = 1\n"})
