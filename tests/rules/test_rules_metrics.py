"""The metrics port: a no-op until an implementation is installed, then every call reaches it."""

from __future__ import annotations

import pytest

from merge_assist.rules import metrics as port
from merge_assist.rules.metrics import METRICS, METRIC_CALLS, RecordingMetrics


def test_calls_bound_at_import_time_reach_the_installed_implementation(recording: RecordingMetrics) -> None:
    merged = METRICS.merged  # callers may keep the bound method
    merged("queue")
    METRICS.failed("rule_refused")
    METRICS.failed("rule_refused")
    assert recording.count("merged", "queue") == 1
    assert recording.count("failed", "rule_refused") == 2
    assert recording.count("failed", "job_failed") == 0


def test_unknown_calls_are_refused() -> None:
    with pytest.raises(AttributeError):
        RecordingMetrics().no_such_metric("x")  # type: ignore[attr-defined]


def test_the_port_lists_every_fact_the_operations_issue_asks_for() -> None:
    assert {"webhook_delivery", "webhook_acknowledged", "command_to_merge", "pipeline_wait", "merged", "failed",
            "train_cars", "train_batch", "gitlab_call", "plugin_error", "slack_failure", "lease_takeover"} <= METRIC_CALLS
