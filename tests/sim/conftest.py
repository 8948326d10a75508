"""Fixtures: a started simulator on a virtual clock and a small populated world."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitlab_sim import SimClock, Simulator, WebhookSettings
from gitlab_sim.state import DEVELOPER, MAINTAINER, Project, User


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path / "sim", SimClock.virtual_clock(), rebase_delay=0.01,
                          webhook_settings=WebhookSettings(backoff=0.01, timeout=2.0))
    simulator.start()
    yield simulator
    simulator.stop()


@dataclass
class World:
    sim: Simulator
    project: Project
    bot: User
    dev: User
    outsider: User


@pytest.fixture
def world(sim: Simulator) -> World:
    bot = sim.create_user("merge-bot", "Merge Bot")
    dev = sim.create_user("alice", "Alice")
    outsider = sim.create_user("mallory")
    project = sim.create_project("acme/app", files={"README.md": "hello\n", "app.py": "x = 1\n"})
    group = sim.create_group("acme")
    sim.add_member(group, bot, MAINTAINER)
    sim.add_member(project, dev, DEVELOPER)
    sim.protect_branch(project, "main", merge_access_level=MAINTAINER)
    return World(sim, project, bot, dev, outsider)
