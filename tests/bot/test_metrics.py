"""prometheus_client behind the metrics port, GitLab endpoint templates, and the worker's status port."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from merge_assist.adapters.gitlab import endpoint_template
from merge_assist.adapters.prometheus import LaneDepth, PrometheusMetrics
from merge_assist.bot.observability import WorkerStatusServer, lane_depths
from merge_assist.rules.metrics import METRIC_CALLS, RecordingMetrics
from merge_assist.rules.model import EntryState, Priority, QueueEntry


def samples(metrics: PrometheusMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_every_port_call_feeds_a_prometheus_family() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    assert all(callable(getattr(metrics, name)) for name in METRIC_CALLS)
    metrics.webhook_delivery("Note Hook", "queued")
    metrics.webhook_acknowledged(0.004)
    metrics.merged("queue")
    metrics.failed("job_failed")
    metrics.command_to_merge(700)
    metrics.gitlab_call("PUT", "/projects/:project/merge_requests/:id/merge", "200")
    metrics.train_cars("7:main", 3)
    metrics.lease_takeover("7:main")
    metrics.dead_letter("poison")
    metrics.slack_message_dropped("queue_full")
    metrics.watch_lanes(lambda: [LaneDepth("7:main", 2, 95.0)])
    metrics.watch_events(lambda: 4)
    found = samples(metrics)
    assert found["merge_assist_webhook_deliveries_total"] == [({"kind": "Note Hook", "outcome": "queued"}, 1.0)]
    assert found["merge_assist_webhook_ack_seconds_count"] == [({}, 1.0)]
    assert found["merge_assist_merges_total"] == [({"how": "queue"}, 1.0)]
    assert found["merge_assist_failures_total"] == [({"reason": "job_failed"}, 1.0)]
    assert ({"le": "900.0"}, 1.0) in found["merge_assist_command_to_merge_seconds_bucket"]
    assert ({"le": "600.0"}, 0.0) in found["merge_assist_command_to_merge_seconds_bucket"]
    assert found["merge_assist_gitlab_requests_total"] == [
        ({"method": "PUT", "endpoint": "/projects/:project/merge_requests/:id/merge", "status": "200"}, 1.0)]
    assert found["merge_assist_train_cars"] == [({"lane": "7:main"}, 3.0)]
    assert found["merge_assist_lease_takeovers_total"] == [({"lane": "7:main"}, 1.0)]
    assert found["merge_assist_dead_letters_total"] == [({"cause": "poison"}, 1.0)]
    assert found["merge_assist_slack_messages_dropped_total"] == [({"reason": "queue_full"}, 1.0)]
    assert found["merge_assist_lane_entries"] == [({"lane": "7:main"}, 2.0)]
    assert found["merge_assist_lane_oldest_entry_age_seconds"] == [({"lane": "7:main"}, 95.0)]
    assert found["merge_assist_events_waiting"] == [({}, 4.0)]


def test_an_unknown_event_backlog_is_left_out_rather_than_reported_as_zero() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    metrics.watch_events(lambda: -1)  # the queue backend does not answer
    assert "merge_assist_events_waiting" not in samples(metrics)
    metrics.watch_events(lambda: 0)
    assert samples(metrics)["merge_assist_events_waiting"] == [({}, 0.0)]


def test_endpoint_templates_hide_ids_names_and_paths() -> None:
    assert endpoint_template("/api/v4/projects/7/merge_requests/3/merge") == "/projects/:project/merge_requests/:id/merge"
    assert endpoint_template("/api/v4/projects/group%2Fapp?x=1") == "/projects/:project"
    assert (endpoint_template("/api/v4/projects/7/repository/files/.merge-assist.yml/raw?ref=main")
            == "/projects/:project/repository/files/:file/raw")
    assert endpoint_template("/api/v4/projects/7/repository/branches/release%2F1") == "/projects/:project/repository/branches/:branch"
    assert endpoint_template("/api/v4/user") == "/user"


def entry(entry_id: int, branch: str, enqueued: datetime) -> QueueEntry:
    return QueueEntry(id=entry_id, project_id=7, mr_iid=entry_id, target_branch=branch, priority=Priority.NORMAL,
                      state=EntryState.QUEUED, requested_by="alice", enqueued_at=enqueued, updated_at=enqueued)


def test_lane_depths_count_entries_and_age_of_the_oldest() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    entries = [entry(1, "main", now - timedelta(minutes=5)), entry(2, "main", now - timedelta(minutes=1)),
               entry(3, "release", (now - timedelta(seconds=30)).replace(tzinfo=None))]
    assert lane_depths(entries, now) == [LaneDepth("7:main", 2, 300.0), LaneDepth("7:release", 1, 30.0)]


def test_worker_status_port_serves_metrics_health_and_readiness() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    metrics.merged("queue")
    state = {"alive": True, "problems": []}
    server = WorkerStatusServer("127.0.0.1", 0, metrics, alive=lambda: bool(state["alive"]),
                                problems=lambda: list(state["problems"])).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert 'merge_assist_merges_total{how="queue"} 1.0' in httpx.get(f"{base}/metrics").text
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        state.update(alive=False, problems=["database does not answer"])
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert httpx.get(f"{base}/readyz").json()["problems"] == ["database does not answer"]
        assert httpx.get(f"{base}/other").status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_gitlab_calls_that_get_no_answer_are_counted_as_unreachable(recording: RecordingMetrics) -> None:
    from merge_assist.adapters.gitlab import ATTEMPTS, PythonGitlabAdapter
    from merge_assist.rules.errors import TransientGitLabError
    from tests.helpers import free_port

    adapter = PythonGitlabAdapter(f"http://127.0.0.1:{free_port()}", "token", timeout=2.0)
    with pytest.raises(TransientGitLabError):
        adapter.get_merge_request(7, 3)
    # Every try is a request of its own: a read is retried with bounded waits.
    assert recording.count("gitlab_call", "GET", "/projects/:project/merge_requests/:id", "unreachable") == ATTEMPTS
