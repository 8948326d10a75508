"""Configuration layers, validation messages and the per-SHA repository file cache."""

from __future__ import annotations

import pytest

from merge_assist.rules.config import ConfigError, RepoConfigCache, parse_yaml_layer, resolve_config
from merge_assist.rules.errors import NotFound
from merge_assist.rules.model import Approvals, Outcome, Project

PROJECT = Project(id=7, path="team/app", default_branch="main")

GOOD_FILE = """
rules:
  approvals: {enabled: true}
  labels: {required: ["ready"], blocking: ["do-not-merge"]}
  freeze: {windows: ["Friday 13:00 - Monday 09:00"], timezone: "Europe/Berlin"}
  target_branch: {patterns: ["main", "release/*"]}
  pipeline: {skipped_is_success: true}
merge: {squash: false}
"""


def test_layers_later_wins_option_by_option(engine):
    server = {"rules": {"labels": {"blocking": ["wip"]}, "freeze": {"timezone": "UTC"}}}
    project_settings = {"rules": {"labels": {"required": ["qa-ok"]}, "discussions": False}}
    repo_layer = parse_yaml_layer(".merge-assist.yml", "rules: {labels: {required: [ready]}}", engine.describe_rules())
    result = resolve_config(engine, server, project_settings, repo_layer)
    assert result.effective["labels"] == {"enabled": True, "on_error": "hold", "required": ["ready"], "blocking": ["wip"]}
    assert result.effective["freeze"]["timezone"] == "UTC"
    assert result.effective["target_branch"]["patterns"] == ["*"]  # built-in default
    assert "discussions" not in result.enabled and "approvals" in result.enabled
    assert result.settings == {"merge": {"squash": None, "mode": "serial", "pipeline_limit": 4, "min_batch": 2,
                                         "max_batch": 4, "flaky_retries": 0, "target_pipeline": True}}
    assert result.error is None


def test_the_documented_example_file_is_valid(engine):
    layer = parse_yaml_layer(".merge-assist.yml", GOOD_FILE, engine.describe_rules())
    assert layer["merge"] == {"squash": False}
    assert layer["rules"]["pipeline"] == {"skipped_is_success": True}


@pytest.mark.parametrize("text, key, reason", [
    ("rules: {aprovals: {enabled: true}}", "rules.aprovals", "unknown rule; expected one of: mr_state, draft"),
    ("rules: {labels: {requird: [ready]}}", "rules.labels.requird", "unknown option; expected one of: enabled, on_error, required, blocking"),
    ("rules: {labels: {required: ready}}", "rules.labels.required", "expected a list, got 'ready'"),
    ("rules: {labels: {required: [ready, 3]}}", "rules.labels.required[1]", "expected a string, got 3"),
    ("rules: {approvals: {enabled: 'yes'}}", "rules.approvals.enabled", "expected true/false"),
    ("rules: {pipeline: {on_error: explode}}", "rules.pipeline.on_error", "expected one of: hold, ignore"),
    ("rules: {freeze: {windows: ['Friday 25:00 - Monday 9am']}}", "rules.freeze.windows[0]", "not a valid time"),
    ("rules: {freeze: {timezone: Mars/Olympus}}", "rules.freeze.timezone", "unknown time zone"),
    ("rules: {target_branch: {patterns: ['']}}", "rules.target_branch.patterns[0]", "must not be empty"),
    ("rules: {pause: 3}", "rules.pause", "expected a mapping of options"),
    ("merge: {mode: trian}", "merge.mode", "expected one of: serial, train"),
    ("merge: {pipeline_limit: 0}", "merge.pipeline_limit", "expected a whole number from 1 to 50"),
    ("merge: {min_batch: 5, max_batch: 2}", "merge.min_batch", "must not be larger than max_batch"),
    ("merge: {squash: maybe}", "merge.squash", "expected true, false or null"),
    ("merge: {target_pipeline: sometimes}", "merge.target_pipeline", "expected true/false"),
    ("merge: {fast: true}", "merge.fast", "unknown setting"),
    ("rulez: {}", "rulez", "unknown key; expected one of: rules, merge"),
    ("rules: [approvals]", "rules", "expected a mapping"),
    ("- just a list", "(top level)", "expected a mapping"),
    ("rules: {labels: {required: [ready}", "line 1", "invalid YAML"),
])
def test_bad_files_name_file_key_and_reason(engine, text, key, reason):
    with pytest.raises(ConfigError) as caught:
        parse_yaml_layer(".merge-assist.yml", text, engine.describe_rules())
    error = caught.value
    assert (error.file, error.key) == (".merge-assist.yml", key)
    assert reason in error.reason
    assert str(error).startswith(f".merge-assist.yml: {key}: ")


def test_a_broken_server_config_raises_and_broken_project_settings_are_left_out(engine):
    with pytest.raises(ConfigError, match="^server config: rules.nope: unknown rule"):
        resolve_config(engine, {"rules": {"nope": {}}}, None)
    result = resolve_config(engine, None, {"rules": {"labels": {"required": "x"}}})
    assert result.error is not None and result.error.file == "project settings"
    assert result.effective["labels"]["required"] == []


class FakeGitLab:
    """Only the two calls the cache makes; counts file reads."""

    def __init__(self) -> None:
        self.head = "sha1"
        self.files: dict[str, str | None] = {}
        self.file_reads: list[str] = []

    def get_branch_sha(self, project_id: int, branch: str) -> str:
        assert (project_id, branch) == (7, "main")
        if self.head is None:
            raise NotFound(404, "branch not found")
        return self.head

    def get_file(self, project_id: int, path: str, ref: str) -> str | None:
        assert path == ".merge-assist.yml"
        self.file_reads.append(ref)
        return self.files.get(ref)


def test_repo_file_is_read_once_per_sha(engine):
    gitlab = FakeGitLab()
    gitlab.files = {"sha1": "rules: {labels: {required: [ready]}}", "sha2": "rules: {labels: {required: [qa]}}"}
    cache = RepoConfigCache(gitlab, engine)
    assert cache.load(PROJECT).effective["labels"]["required"] == ["ready"]
    assert cache.load(PROJECT, {}, {}).effective["labels"]["required"] == ["ready"]
    assert gitlab.file_reads == ["sha1"]
    gitlab.head = "sha2"
    assert cache.load(PROJECT).effective["labels"]["required"] == ["qa"]
    assert gitlab.file_reads == ["sha1", "sha2"]


def test_broken_file_keeps_last_valid_config_and_reports_each_sha_once(engine):
    gitlab = FakeGitLab()
    gitlab.files = {
        "sha1": "rules: {labels: {required: [ready]}}",
        "sha2": "rules: {freeze: {windows: ['Friday 1pm']}}",
        "sha3": "rules: {labls: {}}",
    }
    cache = RepoConfigCache(gitlab, engine)
    cache.load(PROJECT)
    gitlab.head = "sha2"
    broken = cache.load(PROJECT)
    assert broken.effective["labels"]["required"] == ["ready"]  # last valid file still applies
    assert broken.error is not None and broken.error.key == "rules.freeze.windows[0]"
    assert str(broken.error).startswith(".merge-assist.yml: rules.freeze.windows[0]: ")
    again = cache.load(PROJECT)
    assert again.error is None and again.effective["labels"]["required"] == ["ready"]
    gitlab.head = "sha3"
    assert cache.load(PROJECT).error.key == "rules.labls"  # a new broken SHA is reported again
    assert gitlab.file_reads == ["sha1", "sha2", "sha3"]


def test_a_deleted_file_or_empty_repository_means_defaults(engine):
    gitlab = FakeGitLab()
    gitlab.files = {"sha1": "rules: {labels: {required: [ready]}}"}
    cache = RepoConfigCache(gitlab, engine)
    cache.load(PROJECT)
    gitlab.head = "sha2"  # the file was deleted in sha2
    assert cache.load(PROJECT).effective["labels"]["required"] == []
    gitlab.head = None
    assert cache.load(PROJECT).effective == engine.default_options()


def test_effective_options_reach_the_rules(engine, make_context):
    gitlab = FakeGitLab()
    gitlab.files = {"sha1": "rules: {labels: {required: [ready]}, approvals: false}"}
    result = RepoConfigCache(gitlab, engine).load(PROJECT)
    decision = engine.check_enqueue(make_context(approvals=Approvals(1, 1)), result.effective)
    assert decision.outcome is Outcome.REFUSE
    assert [v.rule for v in decision.blocking] == ["labels"]
    assert "approvals" not in {v.rule for v in decision.verdicts}
