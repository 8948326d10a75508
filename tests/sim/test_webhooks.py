"""Webhook delivery: headers, retries with one Idempotency-Key, resend, payload shapes."""

from __future__ import annotations

from gitlab_sim import PipelinePlan, Simulator
from gitlab_sim.hook_payloads import merge_request_payload, note_payload, pipeline_payload

from .conftest import World
from tests.helpers import webhook_payload

from .helpers import Receiver, api, shape_differences

# Keys of the documented examples the simulator does not produce (no milestones,
# time tracking edits, cross-project pipelines or environments in the simulator).
OMITTED = {
    "merge_request_opened.json": {"$.changes.last_edited_at", "$.changes.last_edited_by_id",
                                  "$.changes.updated_by_id", "$.changes.labels", "$.changes.draft",
                                  "$.changes.updated_at"},
    "merge_request_updated.json": {"$.changes.updated_at"},
    "note_on_merge_request.json": set(),
    "pipeline_event.json": {"$.source_pipeline"},
}


def test_headers_token_and_event_names(world: World) -> None:
    with Receiver() as receiver:
        world.sim.add_hook(world.project, receiver.url, token="s3cret")
        world.sim.create_merge_request(world.project, "feature", author=world.dev, files={"f": "1\n"})
        world.sim.post_note(world.project, 1, world.dev, "hello")
        assert world.sim.wait_for_deliveries()
        events = [r.headers["X-Gitlab-Event"] for r in receiver.requests]
        assert events == ["Push Hook", "Pipeline Hook", "Pipeline Hook", "Job Hook",
                          "Merge Request Hook", "Note Hook"]
        note = receiver.events("Note Hook")[0]
        assert note.headers["X-Gitlab-Token"] == "s3cret"
        assert note.headers["User-Agent"].startswith("GitLab/")
        assert note.headers["Content-Type"] == "application/json"
        assert note.headers["X-Gitlab-Instance"] == world.sim.url
        for name in ("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"):
            assert len(note.headers[name]) == 36
        assert note.body["object_attributes"]["note"] == "hello"
        assert note.body["merge_request"]["iid"] == 1


def test_no_token_header_without_a_secret(world: World) -> None:
    with Receiver() as receiver:
        world.sim.add_hook(world.project, receiver.url, events=["note"])
        world.sim.create_merge_request(world.project, "feature", author=world.dev, files={"f": "1\n"})
        note = world.sim.post_note(world.project, 1, world.dev, "hello")
        world.sim.edit_note(world.project, 1, note.id, world.dev, "hello")  # unchanged: no hook
        world.sim.edit_note(world.project, 1, note.id, world.dev, "edited")
        world.sim.wait_for_deliveries()
        assert [r.body["object_attributes"]["action"] for r in receiver.requests] == ["create", "update"]
        assert "X-Gitlab-Token" not in receiver.requests[0].headers


def test_retries_on_500_keep_the_idempotency_key_and_resend_reuses_it(world: World) -> None:
    with Receiver(fail_first=2) as receiver:
        world.sim.add_hook(world.project, receiver.url, events=["note"])
        world.sim.create_merge_request(world.project, "feature", author=world.dev, files={"f": "1\n"})
        world.sim.post_note(world.project, 1, world.dev, "hello")
        world.sim.wait_for_deliveries()
        keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
        webhook_uuids = {r.headers["X-Gitlab-Webhook-UUID"] for r in receiver.requests}
        assert len(receiver.requests) == 3 and len(keys) == 1 and len(webhook_uuids) == 3
        log = world.sim.delivery_log()
        assert [(a.attempt, a.status) for a in log] == [(1, 500), (2, 500), (3, 200)]
        assert log[0].response_body == "boom" and log[0].event == "Note Hook"
        world.sim.resend_delivery(log[0].delivery_id)
        world.sim.wait_for_deliveries()
        assert receiver.requests[-1].headers["Idempotency-Key"] in keys


def test_gives_up_after_bounded_attempts_on_connection_errors(world: World) -> None:
    world.sim.add_hook(world.project, "http://127.0.0.1:9/unreachable", events=["note"])
    world.sim.create_merge_request(world.project, "feature", author=world.dev, files={"f": "1\n"})
    world.sim.post_note(world.project, 1, world.dev, "hello")
    world.sim.wait_for_deliveries()
    log = world.sim.delivery_log()
    assert len(log) == world.sim.backend.dispatcher.settings.max_attempts
    assert all(a.status is None and a.error for a in log)


def test_job_hook_for_early_failure_arrives_before_pipeline_ends(world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan("fail", 100, fail_when="early"))
    with Receiver() as receiver:
        world.sim.add_hook(world.project, receiver.url, events=["job", "pipeline"])
        world.sim.commit(world.project, "x", {"a": "1"}, author=world.dev)
        world.sim.clock.advance(100)
        world.sim.wait_for_deliveries()
        sequence = [(r.body["object_kind"], r.body.get("build_name") or "",
                     r.body.get("build_status") or r.body["object_attributes"]["status"])
                    for r in receiver.requests if r.body.get("build_status") != "running"]
        failed_job = sequence.index(("build", "lint", "failed"))
        assert sequence[-1] == ("pipeline", "", "failed")
        assert failed_job < len(sequence) - 1
        assert ("pipeline", "", "running") in sequence[:failed_job]


def assert_shape_matches(name: str, payload: dict[str, object]) -> None:
    mismatches, missing = shape_differences(webhook_payload(name), payload)
    assert mismatches == []
    assert set(missing) == OMITTED[name], f"unexpected omissions: {set(missing) ^ OMITTED[name]}"


def test_payloads_match_documented_examples(world: World) -> None:
    sim, project = world.sim, world.project
    project.merge_request_pipelines = True
    world.sim.set_pipeline_plan(PipelinePlan("pass", 10))
    mr = sim.create_merge_request(project, "feature", author=world.dev, labels=["API"],
                                  files={"f": "1\n"}, assignees=[world.bot])
    sim.commit(project, "feature", {"f": "2\n"}, author=world.dev)
    note = sim.post_note(project, mr.iid, world.dev, "needs work")
    sim.clock.advance(10)
    backend = sim.backend
    opened = merge_request_payload(backend, mr, world.dev, "open")
    updated = merge_request_payload(backend, mr, world.dev, "update", {}, oldrev="0" * 40)
    assert_shape_matches("merge_request_opened.json", opened)
    assert_shape_matches("merge_request_updated.json", updated)
    assert_shape_matches("note_on_merge_request.json", note_payload(backend, mr, note.id, "create"))
    mr_pipeline = [p for p in sim.pipelines(project) if p.source == "merge_request_event"][-1]
    payload = pipeline_payload(backend, mr_pipeline)
    assert payload["merge_request"]["iid"] == mr.iid  # type: ignore[index]
    assert_shape_matches("pipeline_event.json", payload)


def test_delivered_mr_update_carries_oldrev_and_detailed_status(world: World) -> None:
    with Receiver() as receiver:
        world.sim.add_hook(world.project, receiver.url, events=["merge_request"])
        mr = world.sim.create_merge_request(world.project, "feature", author=world.dev, files={"f": "1\n"})
        first = mr.sha
        world.sim.commit(world.project, "feature", {"f": "2\n"}, author=world.dev)
        world.sim.wait_for_deliveries()
        actions = [r.body["object_attributes"]["action"] for r in receiver.requests]
        assert actions == ["open", "update"]
        update = receiver.requests[1].body["object_attributes"]
        assert update["oldrev"] == first and update["last_commit"]["id"] == mr.sha
        assert update["detailed_merge_status"] == "ci_still_running"


def test_api_requests_are_logged_with_user(sim: Simulator) -> None:
    user = sim.create_user("counter")
    client = api(sim.url, user.token)
    client.get("/user")
    client.get("/version")
    client.get("/projects/404")
    httpx_status = api(sim.url, "bad").get("/user").status_code
    assert httpx_status == 401
    log = sim.request_log("api")
    assert [(r.method, r.path, r.status, r.username) for r in log] == [
        ("GET", "/api/v4/user", 200, "counter"), ("GET", "/api/v4/version", 200, "counter"),
        ("GET", "/api/v4/projects/404", 404, "counter"), ("GET", "/api/v4/user", 401, None)]
    sim.reset_request_log()
    assert sim.request_log() == []
