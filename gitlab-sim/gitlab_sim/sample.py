"""A sample team and project: the cast the demo, the tests and the benchmarks all start from."""

from __future__ import annotations

from dataclasses import dataclass

from .driver import Simulator
from .state import DEVELOPER, MAINTAINER, REPORTER, Project, User


@dataclass
class Team:
    """`bot` and `maintainer` are Maintainers of the project's group; `dev` is a Developer and
    `reporter` a Reporter of the project; `outsider` has no access."""

    sim: Simulator
    project: Project
    bot: User
    dev: User
    maintainer: User
    reporter: User
    outsider: User


def make_team(sim: Simulator, path: str = "acme/app", *, merge_method: str = "merge",
              merge_access_level: int = DEVELOPER, files: dict[str, str] | None = None) -> Team:
    """Create the users and the project, with `main` protected at `merge_access_level`."""
    bot = sim.create_user("merge-bot", "Merge Bot")
    dev = sim.create_user("alice", "Alice")
    maintainer = sim.create_user("bob", "Bob")
    reporter = sim.create_user("rita", "Rita")
    outsider = sim.create_user("mallory", "Mallory")
    project = sim.create_project(path, merge_method=merge_method, files=files or {"README.md": "hello\n"})
    group = sim.create_group(path.rpartition("/")[0])
    sim.add_member(group, bot, MAINTAINER)
    sim.add_member(group, maintainer, MAINTAINER)
    sim.add_member(project, dev, DEVELOPER)
    sim.add_member(project, reporter, REPORTER)
    sim.protect_branch(project, project.default_branch, merge_access_level=merge_access_level)
    return Team(sim, project, bot, dev, maintainer, reporter, outsider)
