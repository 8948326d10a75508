"""A worker process SIGKILLed right after each state of the machine is committed, then restarted,
finishes the MR exactly once: not lost, not merged twice, every transition in the audit log."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest

from gitlab_sim import Simulator
from merge_assist.rules.model import EntryState
from tests.e2e.harness import Bot, World, logs, make_world, start_production, start_worker
from tests.helpers import wait_for

STATES = ["queued", "rebasing", "waiting_pipeline", "merging", "merged"]


@pytest.fixture
def ff_world(sim: Simulator) -> World:
    return make_world(sim, merge_method="ff")


@pytest.fixture(params=STATES)
def crashing_bot(request: pytest.FixtureRequest, sim: Simulator, ff_world: World, tmp_path: Path,
                 pg_url: str, redis_url: str, redis_prefix: str) -> Iterator[tuple[Bot, str]]:
    workdir = tmp_path / "bot"
    workdir.mkdir()
    bot = start_production(sim, ff_world, pg_url, redis_url, redis_prefix, workdir,
                           worker_env={"MERGE_ASSIST_FAILPOINT": f"after:{request.param}"})
    yield bot, request.param
    bot.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(logs(bot))


def kill_and_restart_until_merged(bot: Bot, world: World, iid: int, state: str) -> None:
    """Let the failpoint SIGKILL the worker right after `state` is committed, check the entry
    stopped there, start a fresh worker and wait until the MR is merged."""
    doomed = bot.processes[-1]

    def advance_until_dead() -> bool:
        world.sim.clock.advance(120)
        return doomed.poll() is not None

    wait_for(advance_until_dead, timeout=60, interval=0.2, message=f"the worker to die after {state}")
    assert doomed.returncode == -signal.SIGKILL
    crashed_entry = bot.entry(iid, world.project.id)
    assert crashed_entry is not None and crashed_entry.state.value == state
    start_worker(bot, log_name="worker-restarted.log")

    def advance_until_merged() -> bool:
        world.sim.clock.advance(120)
        entry = bot.entry(iid, world.project.id)
        return entry is not None and entry.state is EntryState.MERGED

    wait_for(advance_until_merged, timeout=60, interval=0.3, message="the MR to merge after the restart")


def test_worker_killed_at_each_state_finishes_exactly_once(crashing_bot: tuple[Bot, str], ff_world: World) -> None:
    bot, state = crashing_bot
    world = ff_world
    iid = world.mr("crash")
    world.sim.commit(world.project, "main", {"other.txt": "moved\n"}, "Move main on", world.maintainer)
    assert world.sim.mr_json(world.project, iid)["detailed_merge_status"] == "need_rebase"
    world.comment(iid, world.dev, "/merge-assist merge")

    kill_and_restart_until_merged(bot, world, iid, state)
    mr = world.sim.merge_request(world.project, iid)
    assert mr.state == "merged"
    assert len(bot.entries(iid, world.project.id)) == 1
    merges = [r for r in world.sim.request_log("api")
              if r.method == "PUT" and r.path.endswith(f"/merge_requests/{iid}/merge") and r.status == 200]
    assert len(merges) == 1
    transitions = [a.outcome for a in reversed(bot.store.audit.entries(target=f"{world.project.id}!{iid}"))
                   if a.action == "transition"]
    assert transitions.count("merged") == 1
    assert {"rebasing", "waiting_pipeline", "merging", "merged"} <= set(transitions)
    commands = [a for a in bot.store.audit.entries(target=f"{world.project.id}!{iid}") if a.action == "enqueue"]
    assert [a.outcome for a in commands].count("queued") == 1


TRAIN_CONFIG = "merge:\n  mode: train\n  min_batch: 1\n"


@pytest.fixture(params=["waiting_pipeline", "merging", "merged"])
def crashing_train(request: pytest.FixtureRequest, sim: Simulator, tmp_path: Path, pg_url: str, redis_url: str,
                   redis_prefix: str) -> Iterator[tuple[Bot, World, str]]:
    from gitlab_sim.sample import make_team

    world = World(**vars(make_team(sim, merge_method="ff", files={"README.md": "hi\n",
                                                                   ".merge-assist.yml": TRAIN_CONFIG})))
    workdir = tmp_path / "bot"
    workdir.mkdir()
    bot = start_production(sim, world, pg_url, redis_url, redis_prefix, workdir,
                           worker_env={"MERGE_ASSIST_FAILPOINT": f"after:{request.param}"})
    yield bot, world, request.param
    bot.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(logs(bot))


def test_a_train_worker_killed_at_each_state_lands_exactly_once(crashing_train: tuple[Bot, World, str]) -> None:
    bot, world, state = crashing_train
    iid = world.mr("train-crash")
    world.sim.commit(world.project, "main", {"other.txt": "moved\n"}, "Move main on", world.maintainer)
    world.comment(iid, world.dev, "/merge-assist merge")
    kill_and_restart_until_merged(bot, world, iid, state)
    assert world.sim.merge_request(world.project, iid).state == "merged"
    assert len(bot.entries(iid, world.project.id)) == 1
    landings = [d for d in world.sim.deliveries() if d.event == "push" and d.payload.get("ref") == "refs/heads/main"
                and d.payload.get("user_id") == world.bot.id]
    assert len(landings) == 1, "the car was pushed to main more than once"
