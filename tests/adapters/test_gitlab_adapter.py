"""The python-gitlab adapter against the simulator: what it maps and what it costs in requests."""

from __future__ import annotations

import pytest

from merge_assist.adapters.gitlab import PythonGitlabAdapter
from gitlab_sim.sample import make_team
from gitlab_sim.state import DEVELOPER
from merge_assist.rules.errors import HeadMoved, NotFound


@pytest.fixture
def team(sim):
    return make_team(sim)


@pytest.fixture
def adapter(sim, team):
    return PythonGitlabAdapter(sim.url, team.bot.token, timeout=10)


def api_calls(sim) -> list[str]:
    return [f"{r.method} {r.path}" for r in sim.request_log("api")]


def test_project_by_path_costs_one_request_and_fills_the_cache(sim, team, adapter):
    sim.reset_request_log()
    project = adapter.get_project_by_path("acme/app")
    assert project is not None and project.id == team.project.id and project.merge_method == "merge"
    assert adapter.get_project(team.project.id) == project
    assert len(api_calls(sim)) == 1
    assert adapter.get_project_by_path("acme/nothing") is None


def test_access_levels(sim, team, adapter):
    project_id = team.project.id
    assert adapter.get_access_level(project_id, team.dev.id) == DEVELOPER
    assert adapter.get_access_level(project_id, team.bot.id) == 40  # inherited from the group
    assert adapter.get_access_level(project_id, team.outsider.id) == 0
    assert adapter.get_merge_access_level(project_id, "main") == DEVELOPER
    assert adapter.get_merge_access_level(project_id, "feature") is None


def test_merge_with_a_stale_sha_is_head_moved(sim, team, adapter):
    mr = sim.create_merge_request(team.project, "feature", author=team.dev, files={"f.txt": "1\n"})
    sim.finish_pipeline(sim.pipelines(team.project, ref="feature")[-1].id, "success")
    with pytest.raises(HeadMoved):
        adapter.merge(team.project.id, mr.iid, sha="0" * 40)
    merged = adapter.merge(team.project.id, mr.iid, sha=adapter.get_merge_request(team.project.id, mr.iid).sha)
    assert merged.state == "merged" and merged.merge_commit_sha


def test_duplicate_emoji_and_missing_objects(sim, team, adapter):
    mr = sim.create_merge_request(team.project, "emoji", author=team.dev, files={"e.txt": "1\n"})
    note = sim.post_note(team.project, mr.iid, team.dev, "/merge-assist merge")
    adapter.award_emoji(team.project.id, mr.iid, note.id, "eyes")
    adapter.award_emoji(team.project.id, mr.iid, note.id, "eyes")  # already there: fine
    assert adapter.get_file(team.project.id, ".merge-assist.yml", "main") is None
    with pytest.raises(NotFound):
        adapter.get_merge_request(team.project.id, 999)
