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
from merge_assist import hookimpl
from merge_assist.rules.model import EntryState, RuleContext
from tests.e2e.harness import Bot, World, logs, start_embedded
from tests.e2e.rules_support import start_bot
from tests.helpers import wait_for

PIPELINE = 600.0
TRAIN_CONFIG = "merge:\n  mode: train\n  pipeline_limit: 4\n  min_batch: 1\n  max_batch: 2\n  flaky_retries: 0\n"


@pytest.fixture(params=["merge", "rebase_merge", "ff"])
def train_world(request: pytest.FixtureRequest, sim: Simulator) -> World:
    team = make_team(sim, merge_method=request.param,
                     files={"README.md": "hello\n", ".merge-assist.yml": TRAIN_CONFIG, "src/defs/greet": "\n"})
    return World(**vars(team))


class Outcomes:
    """A plugin that records the notification hooks, as Slack's and third parties' plugins see them."""

    MERGE_ASSIST_NAME = "recorded_outcomes"

    def __init__(self) -> None:
        self.merged: dict[int, str | None] = {}
        self.failed: dict[int, str] = {}

    @hookimpl
    def merge_assist_after_merge(self, context: RuleContext, merge_commit_sha: str | None) -> None:
        self.merged[context.merge_request.iid] = merge_commit_sha

    @hookimpl
    def merge_assist_merge_failed(self, context: RuleContext, reason: str) -> None:
        self.failed[context.merge_request.iid] = reason


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def train_bot(sim: Simulator, train_world: World, tmp_path: Path, outcomes: Outcomes) -> Iterator[tuple[Bot, TreeCI]]:
    ci = TreeCI(sim, duration=PIPELINE, fail_at=(0.2, 1.0), seed=7)
    sim.set_pipeline_plan(ci)
    bot = start_bot(sim, train_world, tmp_path, extra_plugins=(outcomes,), git_cache_dir=tmp_path / "git")
    yield bot, ci
    bot.stop()


def finished(bot: Bot, world: World, iids: list[int]) -> bool:
    world.sim.clock.advance(PIPELINE / 6)
    entries = [bot.entry(iid, world.project.id) for iid in iids]
    return all(entry is not None and entry.state.is_final for entry in entries)


def test_a_train_lands_the_good_mrs_and_ejects_the_bad_one(train_bot: tuple[Bot, TreeCI], train_world: World,
                                                           outcomes: Outcomes) -> None:
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
        # Plugins (Slack's notifications among them) hear of every merge and of the ejection; the
        # hooks run just after the entries move, so give the last of them a moment.
        wait_for(lambda: len(outcomes.merged) == len(good) and len(outcomes.failed) == 1, timeout=10,
                 message="the merge and failure hooks")
        assert outcomes.merged == {iid: sim.merge_request(project, iid).merge_commit_sha for iid in good}
        assert list(outcomes.failed) == [bad] and "/pipelines/" in outcomes.failed[bad]
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


def test_a_failed_job_frees_its_runner_at_once(sim: Simulator, tmp_path: Path) -> None:
    """A car's verdict is in when one job fails: the rest of its pipeline is cancelled, not left to run."""
    team = make_team(sim, merge_method="merge", files={"README.md": "hello\n", ".merge-assist.yml": TRAIN_CONFIG})
    world = World(**vars(team))
    sim.set_pipeline_plan(TreeCI(sim, duration=PIPELINE, fail_at=lambda request: 0.5))
    bot = start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}", git_cache_dir=tmp_path / "git")
    try:
        bad = sim.create_merge_request(world.project, "bad", files={"src/bad.py": "BROKEN\n"}, author=world.dev).iid
        world.comment(bad, world.dev, "/merge-assist merge")
        wait_for(lambda: finished(bot, world, [bad]), timeout=60, interval=0.2, message="the bad MR to be ejected")
        car_runs = [p for p in sim.pipelines(world.project) if p.ref.startswith("merge-assist/")]
        assert car_runs and car_runs[0].status == "canceled", [(p.ref, p.status) for p in car_runs]
        first = car_runs[0]
        assert first.finished_at is not None and first.started_at is not None
        assert first.finished_at - first.started_at < PIPELINE, "the failed car's pipeline held its runner to the end"
    except BaseException:
        print(logs(bot))
        raise
    finally:
        bot.stop()


@pytest.mark.parametrize("target_pipeline", [True, False])
def test_target_pipeline_setting_decides_whether_a_landing_starts_one(sim: Simulator, tmp_path: Path,
                                                                       target_pipeline: bool) -> None:
    config = TRAIN_CONFIG + f"  target_pipeline: {str(target_pipeline).lower()}\n"
    team = make_team(sim, merge_method="merge", files={"README.md": "hello\n", ".merge-assist.yml": config})
    world = World(**vars(team))
    sim.set_pipeline_plan(TreeCI(sim, duration=PIPELINE))
    bot = start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}", git_cache_dir=tmp_path / "git")
    try:
        good = sim.create_merge_request(world.project, "good", files={"src/good.py": "ok\n"}, author=world.dev).iid
        world.comment(good, world.dev, "/merge-assist merge")
        wait_for(lambda: finished(bot, world, [good]), timeout=60, interval=0.2, message="the MR to land")
        landed = sim.branch_head(world.project, "main")
        assert sim.merge_request(world.project, good).state == "merged" and landed is not None
        on_main = [p.status for p in sim.pipelines(world.project, ref="main", sha=landed)]
        if target_pipeline:
            assert len(on_main) == 1 and on_main[0] != "skipped", on_main
        else:
            assert on_main == ["skipped"], on_main
    except BaseException:
        print(logs(bot))
        raise
    finally:
        bot.stop()
