"""POST /webhooks/gitlab: tokens, malformed bodies, ignored events, deduplication keys, queue down."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from merge_assist.bot.app import create_app
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Secret, Settings
from tests.helpers import webhook_payload

SECRET = "global-webhook-secret"


@pytest.fixture
def runtime_settings():
    return {"webhook_secret": Secret(SECRET)}


def note(text: str = "/merge-assist merge") -> dict:
    body = webhook_payload("note_on_merge_request.json")
    body["object_attributes"]["note"] = text
    return body


def post(client, body, token=SECRET, event="Note Hook", **headers):
    all_headers = {"X-Gitlab-Event": event, **headers}
    if token is not None:
        all_headers["X-Gitlab-Token"] = token
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/webhooks/gitlab", content=content, headers=all_headers)


def test_command_note_is_queued(client, runtime):
    response = post(client, note(), **{"Idempotency-Key": "abc"})
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert runtime.queue.pending() == 1


@pytest.mark.parametrize("token, status", [(None, 401), ("wrong", 401), (SECRET[:-1], 401), (SECRET, 200)])
def test_token_is_checked(client, runtime, token, status):
    assert post(client, note(), token=token).status_code == status
    assert runtime.queue.pending() == (1 if status == 200 else 0)


def test_project_secret_is_accepted_for_its_project_only(client, runtime):
    body = note()
    project_id = body["project_id"]
    runtime.store.projects.register(project_id, "gitlabhq/gitlab-test", webhook_secret="own-secret")
    runtime.webhook_auth.refresh()
    assert post(client, body, token="own-secret").status_code == 200
    other = note()
    other["project_id"] = other["project"]["id"] = project_id + 1
    assert post(client, other, token="own-secret").status_code == 401


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_body_with_valid_token_is_400(client, runtime, raw):
    response = post(client, raw)
    assert response.status_code == 400
    assert "error" in response.json()
    assert runtime.queue.pending() == 0


def test_malformed_body_with_wrong_token_is_401(client):
    assert post(client, b"{not json", token="wrong").status_code == 401


def test_missing_fields_are_named(client):
    body = note()
    del body["object_attributes"]
    response = post(client, body)
    assert response.status_code == 400
    assert "object_attributes" in response.json()["error"]


@pytest.mark.parametrize("event, body", [
    ("Push Hook", {"object_kind": "push", "project_id": 1}),
    ("Note Hook", None),
    ("Pipeline Hook", "running"),
])
def test_ignored_events_get_2xx_and_are_not_queued(client, runtime, event, body):
    if body is None:
        body = note("Looks good to me")
    elif body == "running":
        body = webhook_payload("pipeline_event.json")
        body["object_attributes"]["status"] = "running"
    response = post(client, body, event=event)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert runtime.queue.pending() == 0


def test_relevant_ci_and_mr_events_are_queued(client, runtime):
    pipeline = webhook_payload("pipeline_event.json")
    pipeline["object_attributes"]["status"] = "success"
    assert post(client, pipeline, event="Pipeline Hook").json()["status"] == "queued"
    assert post(client, webhook_payload("merge_request_updated.json"), event="Merge Request Hook").json()["status"] == "queued"
    assert runtime.queue.pending() == 2


def test_delivery_key_prefers_idempotency_key(client, runtime):
    post(client, note(), **{"Idempotency-Key": "k-1"})
    post(client, note())
    first = runtime.queue._queue.get_nowait()[0]
    second = runtime.queue._queue.get_nowait()[0]
    assert first["key"] == "idem:k-1"
    assert second["key"].startswith("hash:")


def test_queue_down_answers_503_so_gitlab_retries(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", webhook_secret=Secret(SECRET),
                        redis_url="redis://127.0.0.1:1/0")
    runtime = Runtime.build(settings, run_workers=False)
    with TestClient(create_app(runtime)) as client:
        response = post(client, note())
        assert response.status_code == 503
        assert client.get("/readyz").status_code == 503
    runtime.stop()


def test_metrics_count_outcomes(client):
    post(client, note())
    post(client, note(), token="wrong")
    text = client.get("/metrics").text
    assert 'merge_assist_webhook_deliveries_total{kind="Note Hook",outcome="queued"}' in text
    assert 'merge_assist_webhook_deliveries_total{kind="Note Hook",outcome="unauthorized"}' in text
    assert "merge_assist_webhook_ack_seconds_count" in text


def push(files: list[str], total: int | None = None, ref: str = "refs/heads/main") -> dict:
    commits = [{"id": "a" * 40, "added": [], "modified": files, "removed": []}]
    return {"object_kind": "push", "ref": ref, "project_id": 5, "commits": commits,
            "project": {"id": 5, "default_branch": "main"}, "total_commits_count": total or len(commits)}


@pytest.mark.parametrize("body, status", [
    (push([".merge-assist.yml"]), "queued"),
    (push(["README.md"]), "queued"),  # a push to a lane's target moves the base of its train
    (push(["README.md"], ref="refs/heads/merge-assist/train/main/3"), "ignored"),  # the bot's own cars
    (push(["README.md"], ref="refs/tags/v1"), "ignored"),
])
def test_pushes_matter_for_the_config_and_for_lane_targets(client, body, status):
    response = post(client, body, event="Push Hook")
    assert response.status_code == 200 and response.json()["status"] == status
