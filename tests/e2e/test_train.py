"""Merge trains end to end: real git cars, real pipelines on the simulator, every merge method.

The simulator's CI judges trees (gitlab_sim.TreeCI): a file with a `BROKEN` line fails, and so does
a call to a function no `src/defs/` file defines, so bad MRs and semantic conflicts are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from gitlab_sim import Simulator, TreeCI
from gitlab_sim.sample import make_team
from merge_assist.rules.model import EntryState
from tests.e2e.harness import Bot, World, logs, start_embedded
from tests.helpers import wait_for

PIPELINE = 600.0
TRAIN_CONFIG = "merge:\n  mode: train\n  pipeline_limit: 4\n  min_batch: 1\n  max_batch: 2\n  flaky_retries: 0\n"


@pytest.fixture(params=["merge", "rebase_merge", "ff"])
def train_world(request: pytest.FixtureRequest, sim: Simulator) -> World:
    team = make_team(sim, merge_method=request.param,
                     files={"README.md": "hello\n", ".merge-assist.yml": TRAIN_CONFIG, "src/defs/greet": "\n"})
    return World(**vars(team))


@pytest.fixture
def train_bot(sim: Simulator, train_world: World, tmp_path: Path) -> Iterator[tuple[Bot, TreeCI]]:
    ci = TreeCI(sim, duration=PIPELINE, fail_at=(0.2, 1.0), seed=7)
    sim.set_pipeline_plan(ci)
    bot = start_embedded(sim, train_world, f"sqlite:///{tmp_path / 'bot.db'}", git_cache_dir=tmp_path / "git")
    yield bot, ci
    bot.stop()


def finished(bot: Bot, world: World, iids: list[int]) -> bool:
    world.sim.clock.advance(PIPELINE / 6)
    entries = [bot.entry(iid, world.project.id) for iid in iids]
    return all(entry is not None and entry.state.is_final for entry in entries)


def test_a_train_lands_the_good_mrs_and_ejects_the_bad_one(train_bot: tuple[Bot, TreeCI], train_world: World) -> None:
    bot, ci = train_bot
    world = train_world
    sim, project = world.sim, world.project
    good = [sim.create_merge_request(project, f"good-{n}", files={f"src/good{n}.py": "call greet\n"},
                                     author=world.dev).iid for n in range(4)]
    bad = sim.create_merge_request(project, "bad", files={"src/bad.py": "BROKEN\n"}, author=world.dev).iid
    iids = [good[0], bad, *good[1:]]
    for iid in iids:
        world.comment(iid, world.dev, "/merge-assist merge")
    try:
        wait_for(lambda: finished(bot, world, iids), timeout=90, interval=0.2, message="the train to finish")
        for iid in good:
            entry = bot.entry(iid, project.id)
            assert entry is not None and entry.state is EntryState.MERGED, (iid, entry)
            assert sim.merge_request(project, iid).state == "merged"
        failed = bot.entry(bad, project.id)
        assert failed is not None and failed.state is EntryState.FAILED
        assert "pipeline" in failed.reason and "/pipelines/" in failed.reason, failed.reason
        assert sim.merge_request(project, bad).state == "opened"
        # Every tree the bot put on main is the tree of a car whose pipeline passed.
        head = sim.branch_head(project, "main")
        assert head is not None and ci.tree_passes(project.path_with_namespace, head)
        landed = [a for a in bot.store.audit.entries(limit=1000) if a.action == "car" and a.outcome == "landed"]
        assert landed
        for record in landed:
            sha = record.detail.split()[-1]
            runs = [p for p in sim.pipelines(project) if p.sha.startswith(sha)]
            assert any(p.status == "success" for p in runs), f"landed {sha} without a passing pipeline"
        assert not [b for b in sim.repo(project).branches() if b.startswith("merge-assist/")], "temporary branches left"
    except BaseException:
        print(logs(bot))
        raise
