"""GitLab answering 5xx, 429 with Retry-After, or too slowly: bounded retries, then a transient
error the lane plans around; never a hidden long sleep, never a note posted twice."""

from __future__ import annotations

import pytest

from gitlab_sim.sample import Team, make_team
from merge_assist.adapters.gitlab import MAX_RETRY_WAIT_SECONDS, PythonGitlabAdapter, retry_wait
from merge_assist.rules.errors import GitLabError, NotFound, TransientGitLabError


@pytest.fixture
def team(sim) -> Team:  # type: ignore[no-untyped-def]
    return make_team(sim)


@pytest.fixture
def adapter(sim, team: Team) -> PythonGitlabAdapter:  # type: ignore[no-untyped-def]
    return PythonGitlabAdapter(sim.url, team.bot.token, timeout=1)


def api_calls(sim, path_part: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in sim.request_log("api") if path_part in r.path)


def test_reads_are_retried_after_server_errors(sim, team: Team, adapter: PythonGitlabAdapter) -> None:  # type: ignore[no-untyped-def]
    sim.reset_request_log()
    sim.faults.server_errors(502, times=2)
    assert adapter.get_branch_sha(team.project.id, "main")
    assert sim.faults.injected == 2


def test_retry_after_is_honoured_when_short(sim, team: Team, adapter: PythonGitlabAdapter) -> None:  # type: ignore[no-untyped-def]
    mr = sim.create_merge_request(team.project, "limited", author=team.dev, files={"l.txt": "1\n"})
    sim.reset_request_log()
    sim.faults.rate_limit(retry_after=1, times=1)
    adapter.post_note(team.project.id, mr.iid, "after a 429")  # GitLab did nothing on a 429: repeat
    assert api_calls(sim, "/notes") == 2 and sim.faults.injected == 1
    assert [n.body for n in sim.state.notes.values()].count("after a 429") == 1


def test_a_long_retry_after_fails_fast_as_transient(sim, team: Team, adapter: PythonGitlabAdapter) -> None:  # type: ignore[no-untyped-def]
    sim.faults.rate_limit(retry_after=3600)
    with pytest.raises(TransientGitLabError) as raised:
        adapter.get_merge_request(team.project.id, 1)
    assert raised.value.status == 429
    assert sim.faults.injected == 1  # it gave up at once instead of sleeping an hour
    sim.faults.clear()


def test_writes_are_not_repeated_after_a_server_error(sim, team: Team, adapter: PythonGitlabAdapter) -> None:  # type: ignore[no-untyped-def]
    mr = sim.create_merge_request(team.project, "unsure", author=team.dev, files={"u.txt": "1\n"})
    sim.faults.server_errors(500)
    with pytest.raises(TransientGitLabError):
        adapter.post_note(team.project.id, mr.iid, "maybe posted")
    assert sim.faults.injected == 1
    sim.faults.clear()


def test_a_stalled_gitlab_times_out_as_transient(sim, team: Team, adapter: PythonGitlabAdapter) -> None:  # type: ignore[no-untyped-def]
    sim.faults.stall(3.0, times=2)
    assert adapter.get_branch_sha(team.project.id, "main")  # two timeouts, then an answer
    assert sim.faults.injected == 2
    sim.faults.stall(3.0)
    with pytest.raises(TransientGitLabError):
        adapter.get_branch_sha(team.project.id, "main")
    sim.faults.clear()


@pytest.mark.parametrize("error, attempt, retry_after, idempotent, expected", [
    (TransientGitLabError(503, "x"), 1, None, True, 0.5),
    (TransientGitLabError(503, "x"), 2, None, True, 1.0),
    (TransientGitLabError(503, "x"), 3, None, True, None),
    (TransientGitLabError(503, "x"), 1, None, False, None),
    (TransientGitLabError(429, "x"), 1, 2.0, False, 2.0),
    (TransientGitLabError(429, "x"), 1, MAX_RETRY_WAIT_SECONDS + 1, True, None),
    (TransientGitLabError(None, "timeout"), 1, None, True, 0.5),
    (NotFound(404, "x"), 1, None, True, None),
    (GitLabError(403, "x"), 1, None, True, None),
])
def test_retry_wait(error: GitLabError, attempt: int, retry_after: float | None, idempotent: bool,
                    expected: float | None) -> None:
    assert retry_wait(error, attempt, retry_after, idempotent=idempotent) == expected
