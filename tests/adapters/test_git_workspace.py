"""The train's git builder against the simulator's git over HTTP: a batch car, landed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitlab_sim import Simulator
from gitlab_sim.sample import make_team
from merge_assist.adapters.git_workspace import GitWorkspace
from merge_assist.rules.model import Project
from merge_assist.rules.train_ports import BuiltCar, RiderSource
from tests.helpers import wait_for


@pytest.mark.parametrize("merge_method", ["merge", "rebase_merge", "ff"])
@pytest.mark.parametrize("squash", [False, True])
def test_each_rider_of_a_landed_batch_has_the_merge_commit_gitlab_reports(
        sim: Simulator, tmp_path: Path, merge_method: str, squash: bool) -> None:
    team = make_team(sim, merge_method=merge_method)
    project = Project(team.project.id, team.project.path_with_namespace, merge_method=merge_method)
    mrs = [sim.create_merge_request(team.project, f"feature-{n}", files={f"src/f{n}.py": f"{n}\n"},
                                    author=team.dev) for n in range(3)]
    riders = [RiderSource(entry_id=100 + n, iid=mr.iid, title=mr.title, source_branch=mr.source_branch,
                          head_sha=mr.sha, squash=squash) for n, mr in enumerate(mrs)]
    git = GitWorkspace(tmp_path / "git", sim.url, team.bot.token)
    base = sim.branch_head(team.project, "main")
    assert base is not None

    built = git.build(project, base, riders, "merge-assist/car-1", "main")
    assert isinstance(built, BuiltCar)
    git.land(project, "main", built.commit_sha, built.source_updates)
    assert sim.branch_head(team.project, "main") == built.commit_sha

    merged_as = git.rider_commits(project, built.commit_sha, riders, built.source_updates)
    wait_for(lambda: all(sim.merge_request(team.project, mr.iid).state == "merged" for mr in mrs),
             message="GitLab to see the MRs merged by the push")
    reported = {100 + n: sim.merge_request(team.project, mr.iid).merge_commit_sha for n, mr in enumerate(mrs)}
    assert merged_as == reported
    assert len(set(merged_as.values())) == len(riders)  # one commit each, the last one the car itself
    assert merged_as[riders[-1].entry_id] == built.commit_sha
