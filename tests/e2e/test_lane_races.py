"""Deterministic interleavings: a worker is parked by a barrier right after committing each state of
the lane, while a command or a GitLab event arrives and is handled by the other worker process;
then the parked worker goes on. The expected outcome of every case is written down below.

Two real `worker` processes and `serve`, on PostgreSQL and on SQLite (production mode: Redis queue).
The project merges fast-forward, and the target moves after each MR is opened, so every MR passes
through queued → rebasing → waiting_pipeline → merging.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from gitlab_sim import Simulator
from merge_assist.rules.model import EntryState
from tests.e2e.harness import Bot, World, logs, make_world, start_production, start_worker
from tests.helpers import wait_for

STATES = ("queued", "rebasing", "waiting_pipeline", "merging")


@dataclass(frozen=True)
class Case:
    action: str  # cancel | priority | retry | push | close
    state: str  # the state the parked worker has just committed
    ends: EntryState
    reply: str | None = None  # a text the bot's answer to the racing command must contain

    @property
    def id(self) -> str:
        return f"{self.action}@{self.state}"


def expected(action: str, state: str) -> Case:
    if action == "cancel":
        if state == "merging":  # the move to merging came first: too late, and it merges
            return Case(action, state, EntryState.MERGED, "too late to cancel")
        return Case(action, state, EntryState.CANCELLED, "Removed")
    if action == "close":  # closed while merging: GitLab refuses the merge, the lane cancels it
        return Case(action, state, EntryState.CANCELLED)
    if action == "priority":
        return Case(action, state, EntryState.MERGED, "Priority set to low")
    if action == "retry":
        return Case(action, state, EntryState.MERGED, "already queued")
    return Case(action, state, EntryState.MERGED)  # push: the new head is validated and merged


ALL_CASES = [expected(action, state) for action in ("cancel", "priority", "retry", "push", "close") for state in STATES]
# SQLite runs the cases that decide whether something merges; PostgreSQL runs every case.
SQLITE_CASES = [case for case in ALL_CASES if case.action in ("cancel", "close")]


@pytest.fixture
def race_world(sim: Simulator) -> World:
    return make_world(sim, merge_method="ff")


@pytest.fixture(params=["postgresql", "sqlite"])
def racing_bot(request: pytest.FixtureRequest, sim: Simulator, race_world: World, tmp_path: Path,
               redis_url: str, redis_prefix: str) -> Iterator[tuple[Bot, Path, list[Case]]]:
    if request.param == "postgresql":
        database_url, cases = request.getfixturevalue("pg_url"), ALL_CASES
    else:
        database_url, cases = f"sqlite:///{tmp_path / 'bot.db'}", SQLITE_CASES
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workdir = tmp_path / "bot"
    workdir.mkdir()
    env = {"MERGE_ASSIST_FAILPOINT": "barrier", "MERGE_ASSIST_FAILPOINT_DIR": str(barrier)}
    bot = start_production(sim, race_world, database_url, redis_url, redis_prefix, workdir, worker_env=env)
    start_worker(bot, log_name="worker-2.log", extra_env=env)
    yield bot, barrier, cases
    bot.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(logs(bot))


def advance_until(world: World, condition: Callable[[], object], message: str, timeout: float = 40) -> object:
    def step() -> object:
        world.sim.clock.advance(30)
        return condition()

    return wait_for(step, timeout=timeout, interval=0.1, message=message)


def race(bot: Bot, barrier: Path, world: World, case: Case) -> None:
    project = world.project
    branch = f"race-{case.action}-{case.state}".replace("_", "-")
    iid = world.mr(branch)
    world.sim.commit(project, "main", {f"{branch}-main.txt": "moved\n"}, f"Move main for {branch}", world.maintainer)
    (barrier / "armed").write_text(f"{case.state} {project.id}!{iid}")
    world.comment(iid, world.dev, "/merge-assist merge")
    advance_until(world, (barrier / "reached").exists, f"{case.id}: a worker to park after {case.state}")
    (barrier / "reached").unlink()

    target = f"{project.id}!{iid}"
    if case.action in ("cancel", "priority", "retry"):
        text = {"cancel": "/merge-assist cancel", "priority": "/merge-assist priority low",
                "retry": "/merge-assist retry"}[case.action]
        world.comment(iid, world.dev, text)
        wait_for(lambda: any(a.action == f"command:{case.action}" for a in bot.store.audit.entries(target=target)),
                 timeout=20, message=f"{case.id}: the other worker to answer `{case.action}`")
    elif case.action == "push":
        world.sim.commit(project, branch, {f"{branch}-pushed.txt": "pushed\n"}, "Push while queued", world.dev)
        world.sim.wait_for_deliveries()
    else:
        world.sim.close_mr(project, iid, world.dev)
        world.sim.wait_for_deliveries()
    (barrier / "go").touch()

    def final() -> object:
        entry = bot.entry(iid, project.id)
        return entry if entry is not None and entry.state.is_final else None

    entry = advance_until(world, final, f"{case.id}: the entry to finish")
    assert entry.state is case.ends, f"{case.id}: ended {entry.state.value} ({entry.reason})"  # type: ignore[attr-defined]
    merged = world.sim.merge_request(project, iid).state == "merged"
    assert merged is (case.ends is EntryState.MERGED), f"{case.id}: MR state in GitLab"
    if case.reply is not None:
        reply = case.reply
        wait_for(lambda: any(reply in note for note in world.notes(iid)), timeout=20,
                 message=f"{case.id}: the reply {reply!r}")
    if case.action == "push":
        head = world.sim.branch_head(project, "main")
        assert world.sim.repo(project).read_file(head, f"{branch}-pushed.txt") is not None, \
            f"{case.id}: the pushed head merged"


@pytest.mark.slow
def test_each_command_and_event_racing_each_state(racing_bot: tuple[Bot, Path, list[Case]], race_world: World) -> None:
    bot, barrier, cases = racing_bot
    for case in cases:
        race(bot, barrier, race_world, case)
