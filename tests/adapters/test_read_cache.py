"""Cached reads and their epochs: a bump in one process drops the value in every process."""

from __future__ import annotations

import pytest
import redis

from merge_assist.adapters import read_cache
from merge_assist.adapters.gitlab import PythonGitlabAdapter
from merge_assist.adapters.read_cache import (
    EpochCache, LocalEpochs, ReadInvalidation, RedisEpochs, merge_requests_scope, project_scope,
)
from gitlab_sim.sample import make_team
from merge_assist.rules.errors import NotMergeable

SCOPE = "mrs:1"


def loader(*values: str):
    answers = list(values)
    calls: list[str] = []

    def load() -> str:
        calls.append(answers[0])
        return answers.pop(0)

    return load, calls


def test_a_bump_drops_the_value():
    epochs = LocalEpochs()
    cache: EpochCache[str] = EpochCache(epochs, 60)
    load, calls = loader("old", "new")
    assert cache.get(SCOPE, "k", load) == "old"
    assert cache.get(SCOPE, "k", load) == "old" and calls == ["old"]
    epochs.bump(SCOPE)
    assert cache.peek(SCOPE, "k") is None
    assert cache.get(SCOPE, "k", load) == "new"


def test_a_bump_during_the_read_makes_its_answer_stale():
    epochs = LocalEpochs()
    cache: EpochCache[str] = EpochCache(epochs, 60)

    def load_while_a_webhook_arrives() -> str:
        epochs.bump(SCOPE)
        return "read before the change was seen"

    cache.fresh(SCOPE, "k", load_while_a_webhook_arrives)
    assert cache.peek(SCOPE, "k") is None


def test_other_scopes_keep_their_values():
    epochs = LocalEpochs()
    cache: EpochCache[str] = EpochCache(epochs, 60)
    cache.fresh(project_scope(1), "settings", lambda: "kept")
    epochs.bump(merge_requests_scope(1))
    epochs.bump(project_scope(2))
    assert cache.peek(project_scope(1), "settings") == "kept"


def test_values_expire_even_without_a_webhook(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(read_cache.time, "monotonic", lambda: now[0])
    cache: EpochCache[str] = EpochCache(LocalEpochs(), 60)
    cache.fresh(SCOPE, "k", lambda: "v")
    now[0] += 59
    assert cache.peek(SCOPE, "k") == "v"
    now[0] += 1
    assert cache.peek(SCOPE, "k") is None


def test_a_bump_in_one_process_drops_the_value_in_another(redis_url, redis_prefix):
    serve, worker = RedisEpochs(redis_url, redis_prefix), RedisEpochs(redis_url, redis_prefix)
    cache: EpochCache[str] = EpochCache(worker, 60)
    cache.fresh(SCOPE, "k", lambda: "pipeline running")
    assert cache.peek(SCOPE, "k") == "pipeline running"
    ReadInvalidation(serve).merge_requests_changed(1)
    assert cache.peek(SCOPE, "k") is None


def test_without_redis_every_read_goes_to_gitlab_and_bumps_fail_loudly():
    epochs = RedisEpochs("redis://127.0.0.1:1/0", "nowhere")
    cache: EpochCache[str] = EpochCache(epochs, 60)
    cache.fresh(SCOPE, "k", lambda: "v")
    assert cache.peek(SCOPE, "k") is None
    with pytest.raises(redis.RedisError):
        epochs.bump(SCOPE)  # the event is delivered again instead of leaving stale values behind


# -- the adapter against the simulator ------------------------------------------------------

@pytest.fixture
def team(sim):
    return make_team(sim)


def api_calls(sim) -> list[str]:
    return [f"{r.method} {r.path}" for r in sim.request_log("api")]


def test_the_adapter_keeps_what_webhooks_have_not_dropped(sim, team):
    epochs = LocalEpochs()
    adapter = PythonGitlabAdapter(sim.url, team.bot.token, timeout=10, epochs=epochs)
    project_id = team.project.id
    mr = sim.create_merge_request(team.project, "feature", author=team.dev, files={"f.txt": "1\n"})
    assert adapter.cached_merge_request(project_id, mr.iid) is None
    read = adapter.get_merge_request(project_id, mr.iid)
    adapter.get_merge_access_level(project_id, "main")
    adapter.get_project(project_id)
    adapter.list_open_merge_requests(project_id, "main")
    adapter.get_branch_sha(project_id, "main")
    sim.reset_request_log()
    assert adapter.cached_merge_request(project_id, mr.iid) == read
    assert [m.iid for m in adapter.cached_open_merge_requests(project_id, "main") or []] == [mr.iid]
    assert adapter.cached_branch_sha(project_id, "main") == sim.branch_head(team.project, "main")
    adapter.get_merge_access_level(project_id, "main")
    adapter.get_project(project_id)
    assert api_calls(sim) == []
    ReadInvalidation(epochs).merge_requests_changed(project_id)
    assert adapter.cached_merge_request(project_id, mr.iid) is None
    assert adapter.cached_open_merge_requests(project_id, "main") is None
    assert adapter.cached_branch_sha(project_id, "main") is None
    adapter.get_merge_access_level(project_id, "main")  # project settings are not about MRs: still cached
    assert api_calls(sim) == []


def test_the_bots_own_merge_and_a_refusal_drop_what_they_change(sim, team):
    adapter = PythonGitlabAdapter(sim.url, team.bot.token, timeout=10)
    project_id = team.project.id
    mr = sim.create_merge_request(team.project, "feature", author=team.dev, files={"f.txt": "1\n"})
    sha = adapter.get_merge_request(project_id, mr.iid).sha
    adapter.get_merge_access_level(project_id, "main")
    with pytest.raises(NotMergeable):  # its pipeline has not passed yet
        adapter.merge(project_id, mr.iid, sha=sha)
    assert adapter.cached_merge_request(project_id, mr.iid) is None
    sim.reset_request_log()
    adapter.get_merge_access_level(project_id, "main")
    assert len(api_calls(sim)) == 1  # a refused merge may mean our picture of the project is wrong
    sim.finish_pipeline(sim.pipelines(team.project, ref="feature")[-1].id, "success")
    adapter.get_merge_request(project_id, mr.iid)
    adapter.merge(project_id, mr.iid, sha=sha)
    assert adapter.cached_merge_request(project_id, mr.iid) is None
