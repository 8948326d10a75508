"""Property test of merge trains on the simulator: 102 seeds, 34 per merge method.

Each seed is a project of its own (its own lane), with 3-5 MRs: good ones, bad ones (a `BROKEN`
line), sometimes a semantic conflict (one MR renames a function, another calls the old name; each
passes alone), flaky pipelines (5 %, one re-test), pushes to queued MRs, cancels, pushes to the
target by someone else, and urgent MRs. Seeds run 34 at a time against one bot (one simulator on a
virtual clock), which also exercises lanes side by side; each batch of 34 is a test of its own.

After the run, for every seed:
- every head the bot pushed to the target is a commit whose pipeline passed, and its tree passes CI;
- no bad MR is merged, no MR whose cancel was accepted is merged;
- every other MR is merged, or its entry ended with a reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from gitlab_sim import Simulator, TreeCI
from gitlab_sim.sample import make_team
from gitlab_sim.state import DEVELOPER
from merge_assist.rules.model import EntryState
from tests.e2e.harness import Bot, World, start_embedded
from tests.helpers import wait_for

D = 600.0
SEEDS = 102
BATCH = 34
METHODS = ("merge", "rebase_merge", "ff")
CONFIG = "merge:\n  mode: train\n  pipeline_limit: 3\n  min_batch: 1\n  max_batch: 3\n  flaky_retries: 1\n"


@dataclass
class Seed:
    number: int
    world: World
    bad: set[int] = field(default_factory=set)
    events: list[tuple[float, str, int]] = field(default_factory=list)  # (sim time, action, iid)

    @property
    def path(self) -> str:
        return self.world.project.path_with_namespace


@pytest.fixture
def trains(sim: Simulator, tmp_path: Path) -> Iterator[tuple[Bot, World, TreeCI]]:
    ci = TreeCI(sim, duration=D, fail_at=(0.2, 1.0), flaky_rate=0.05, seed=11)
    sim.set_pipeline_plan(ci)
    sim.set_runner_capacity(24)
    team = World(**vars(make_team(sim)))
    bot = start_embedded(sim, team, f"sqlite:///{tmp_path / 'bot.db'}", git_cache_dir=tmp_path / "git")
    maintainer = bot.store.users.ensure_gitlab_user(team.maintainer.username, team.maintainer.id)
    bot.store.users.grant(maintainer.id, "priority_manager")
    yield bot, team, ci
    bot.stop()


def make_seed(bot: Bot, team: World, number: int, start: float) -> Seed:
    sim = team.sim
    project = sim.create_project(f"acme/train-{number}", merge_method=METHODS[number % 3], files={
        "README.md": "hello\n", ".merge-assist.yml": CONFIG, "src/defs/greet": "\n", "src/defs/old": "\n"})
    sim.protect_branch(project, "main", merge_access_level=DEVELOPER)
    sim.add_member(project, team.dev, DEVELOPER)
    sim.add_hook(project, f"{bot.url}/webhooks/gitlab", "e2e-webhook-secret")
    world = World(**{**vars(team), "project": project})
    seed = Seed(number, world)
    rng = random.Random(number)
    iids: list[int] = []
    conflict = rng.random() < 0.4
    for index in range(rng.randint(3, 5)):
        branch = f"mr-{index}"
        if conflict and index == 1:
            files: dict[str, str | None] = {"src/defs/old": None, "src/defs/new": "\n", "src/a.py": "call new\n"}
        elif conflict and index == 2:
            files = {"src/b.py": "call old\n"}
        elif rng.random() < 0.15:
            files = {f"src/bad{index}.py": "BROKEN\n"}
        else:
            files = {f"src/good{index}.py": "call greet\n"}
        iid = sim.create_merge_request(project, branch, author=team.dev, files=files).iid
        if "BROKEN\n" in files.values():
            seed.bad.add(iid)
        iids.append(iid)
        urgent = rng.random() < 0.2
        seed.events.append((start + rng.uniform(0, 0.8) * D, "urgent" if urgent else "merge", iid))
    if rng.random() < 0.35:
        seed.events.append((start + rng.uniform(0.3, 1.5) * D, "cancel", rng.choice(iids)))
    if rng.random() < 0.35:
        seed.events.append((start + rng.uniform(0.3, 1.5) * D, "push", rng.choice(iids)))
    if rng.random() < 0.25:
        seed.events.append((start + rng.uniform(0.3, 1.5) * D, "target", 0))
    return seed


def act(seed: Seed, action: str, iid: int, step: int) -> None:
    world, sim = seed.world, seed.world.sim
    if action == "merge":
        world.comment(iid, world.dev, "/merge-assist merge")
    elif action == "urgent":
        world.comment(iid, world.maintainer, "/merge-assist merge --priority urgent")
    elif action == "cancel":
        world.comment(iid, world.dev, "/merge-assist cancel")
    elif action == "push":
        branch = sim.merge_request(world.project, iid).source_branch
        sim.commit(world.project, branch, {f"src/pushed{step}.py": "call greet\n"}, "Push while queued", world.dev)
    else:
        sim.commit(world.project, "main", {f"docs/{step}.md": "moved\n"}, "Someone else pushes", world.maintainer)


def finished(bot: Bot, seed: Seed) -> bool:
    commanded = {iid for _, action, iid in seed.events if action in ("merge", "urgent")}
    for iid in commanded:
        entry = bot.entry(iid, seed.world.project.id)
        if entry is None or entry.state.is_active:
            return False
    return True


def describe(bot: Bot, seed: Seed) -> str:
    """Where an unfinished seed stands, for the failure report."""
    from merge_assist.rules.model import LaneKey

    project = seed.world.project
    lines = [f"seed {seed.number} ({project.merge_method}) events {seed.events}"]
    lines += [f"  !{e.mr_iid} {e.state.value}: {e.reason}" for e in bot.store.queue.all_entries()
              if e.project_id == project.id]
    lines += [f"  car {r.car.car_id} {r.car.status.value} side={r.car.side} riders={r.car.entry_ids} {r.reason}"
              for r in bot.store.cars.lane_cars(LaneKey(project.id, "main"))]
    lines += [f"  pipeline #{p.id} {p.ref} {p.status}" for p in seed.world.sim.pipelines(project)
              if p.ref.startswith("merge-assist/")][-6:]
    return "\n".join(lines)


def check(bot: Bot, seed: Seed, ci: TreeCI) -> dict[str, int]:
    world, sim, project = seed.world, seed.world.sim, seed.world.project
    figures = {"landings": 0, "merged": 0, "failed": 0, "cancelled": 0}
    for delivery in sim.deliveries():
        payload = delivery.payload
        if (delivery.event == "push" and payload.get("project_id") == project.id
                and payload.get("ref") == "refs/heads/main" and payload.get("user_id") == world.bot.id):
            head = str(payload["after"])
            assert any(p.status == "success" and p.ref.startswith("merge-assist/")
                       for p in sim.pipelines(project, sha=head)), f"seed {seed.number}: {head} landed untested"
            assert ci.tree_passes(seed.path, head), f"seed {seed.number}: {head} landed a failing tree"
            figures["landings"] += 1
    for iid in {iid for _, action, iid in seed.events if action in ("merge", "urgent")}:
        state = sim.merge_request(project, iid).state
        entry = bot.entry(iid, project.id)
        assert entry is not None and entry.state.is_final, f"seed {seed.number}: !{iid} never finished"
        if iid in seed.bad:
            assert state != "merged", f"seed {seed.number}: bad !{iid} merged"
        if any(f"Removed !{iid}" in note for note in world.notes(iid)):
            assert state != "merged", f"seed {seed.number}: cancelled !{iid} merged"
        if state == "merged":
            figures["merged"] += 1
        else:
            assert entry.state in (EntryState.FAILED, EntryState.CANCELLED) and entry.reason, \
                f"seed {seed.number}: !{iid} neither merged nor told why ({entry.state.value})"
            figures["failed" if entry.state is EntryState.FAILED else "cancelled"] += 1
    return figures


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.parametrize("first", range(0, SEEDS, BATCH), ids=lambda first: f"seeds-{first}-{first + BATCH - 1}")
def test_trains_keep_their_promise_over_many_seeds(trains: tuple[Bot, World, TreeCI], first: int) -> None:
    """One batch of seeds against one bot; the batches are separate tests so they can run in parallel."""
    bot, team, ci = trains
    sim = team.sim
    queue = bot.server.runtime.queue  # type: ignore[union-attr]
    totals = {"landings": 0, "merged": 0, "failed": 0, "cancelled": 0}
    last = min(first + BATCH, SEEDS)
    start = sim.clock.now()
    seeds = [make_seed(bot, team, number, start) for number in range(first, last)]
    pending = sorted(((when, seed.number, action, iid, seed) for seed in seeds
                      for when, action, iid in seed.events), key=lambda item: item[:2])
    step = 0
    while pending:
        when, _, action, iid, seed = pending.pop(0)
        if when > sim.clock.now():
            sim.wait_for_deliveries()
            sim.clock.advance(when - sim.clock.now())
        step += 1
        act(seed, action, iid, step)

    def all_finished() -> bool:
        sim.wait_for_deliveries()
        if not queue.idle():
            return False  # let the bot catch up before time moves on
        sim.clock.advance(D / 10)
        return all(finished(bot, seed) for seed in seeds)

    try:
        wait_for(all_finished, timeout=300, interval=0.05, message=f"seeds {first}..{last - 1} to finish")
    except TimeoutError:
        for seed in seeds:
            if not finished(bot, seed):
                print(describe(bot, seed))
        raise
    for seed in seeds:
        for key, value in check(bot, seed, ci).items():
            totals[key] += value
    print(f"\ntrain properties: seeds {first}..{last - 1} over {', '.join(METHODS)}: {totals}")
    assert totals["landings"] >= last - first and totals["merged"] >= 2 * (last - first)
