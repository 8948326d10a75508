"""`ProjectConfig`: a broken `.merge-assist.yml` is reported on an MR once, whoever reads it first."""

from __future__ import annotations

from typing import Any

from merge_assist.adapters.read_cache import LocalEpochs, config_scope
from merge_assist.bot.config import ProjectConfig
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.model import MergeRequest
from tests.rules.test_rule_config import PROJECT, FakeGitLab


class NoProjectSettings:
    def get(self, project_id: int) -> None:
        return None


class RecordedComments:
    def __init__(self) -> None:
        self.comments: list[tuple[int, int, str]] = []

    def comment(self, project_id: int, iid: int, body: str) -> None:
        self.comments.append((project_id, iid, body))


def merge_request(iid: int) -> MergeRequest:
    return MergeRequest(project_id=PROJECT.id, iid=iid, title="t", author_id=1, author_username="alice",
                        source_branch="feature", target_branch="main", state="opened", sha="abc")


EPOCHS = LocalEpochs()


def project_config(engine: RuleEngine, gitlab: FakeGitLab) -> tuple[ProjectConfig, RecordedComments]:
    feedback = RecordedComments()
    config = ProjectConfig(gitlab, engine, NoProjectSettings(), feedback, epochs=EPOCHS)  # type: ignore[arg-type]
    return config, feedback


def push_to_default_branch(gitlab: FakeGitLab, sha: str) -> None:
    """What the push webhook does: the default branch moved, cached configuration is dropped."""
    gitlab.head = sha
    EPOCHS.bump(config_scope(PROJECT.id))


def test_an_error_first_seen_without_an_mr_is_reported_on_the_next_mr_once(engine: RuleEngine) -> None:
    gitlab = FakeGitLab()
    gitlab.files = {"sha1": "rules: {labels: {blocking: [do-not-merge]}}", "sha2": "rules: {freez: {}}"}
    config, feedback = project_config(engine, gitlab)
    config.options_for(PROJECT, merge_request(1))
    push_to_default_branch(gitlab, "sha2")

    # The lane reads its merge mode first, with no MR to tell.
    options: Any = config.options_for(PROJECT)
    assert options["labels"]["blocking"] == ["do-not-merge"]  # the last valid file stays
    assert feedback.comments == []

    config.options_for(PROJECT, merge_request(2))
    config.options_for(PROJECT, merge_request(3))
    assert len(feedback.comments) == 1
    project_id, iid, body = feedback.comments[0]
    assert (project_id, iid) == (PROJECT.id, 2)
    assert "Configuration error" in body and "`rules.freez`" in body


def test_a_fix_before_any_mr_looks_drops_the_pending_report(engine: RuleEngine) -> None:
    gitlab = FakeGitLab()
    gitlab.files = {"sha1": "rules: {freez: {}}", "sha2": "rules: {labels: {blocking: [wip]}}"}
    config, feedback = project_config(engine, gitlab)
    config.options_for(PROJECT)
    push_to_default_branch(gitlab, "sha2")
    options: Any = config.options_for(PROJECT, merge_request(1))
    assert options["labels"]["blocking"] == ["wip"]
    assert feedback.comments == []
