"""Fixtures: the sample team in the simulator (the `sim` fixture is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from gitlab_sim import Simulator
from gitlab_sim.sample import Team, make_team
from gitlab_sim.state import MAINTAINER


World = Team


@pytest.fixture
def world(sim: Simulator) -> Team:
    return make_team(sim, merge_access_level=MAINTAINER, files={"README.md": "hello\n", "app.py": "x = 1\n"})
