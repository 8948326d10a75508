"""Event dispatch and the cached reads: what each webhook drops, and which lanes it wakes."""

from __future__ import annotations

import itertools

import pytest

from merge_assist.adapters.read_cache import LocalEpochs, ReadInvalidation, config_scope, merge_requests_scope
from merge_assist.bot.dispatch import EventHandler
from merge_assist.rules.model import LaneKey, Priority
from merge_assist.storage import Store, migrate
from tests.helpers import webhook_payload

BOT = 77
LANE = LaneKey(1, "master")
keys = itertools.count()


class RecordingLanes:
    def __init__(self) -> None:
        self.woken: list[tuple[str, LaneKey]] = []

    def drive(self, lane):
        self.woken.append(("drive", lane))

    def job_failed(self, lane, sha, job_name):
        self.woken.append(("job_failed", lane))

    def car_pipeline(self, lane, sha, pipeline_id, status, web_url):
        self.woken.append(("car_pipeline", lane))


class NoCommands:
    def known_commands(self):
        return ["merge"]

    def execute(self, *args, **kwargs):
        pass


@pytest.fixture
def world(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(store.db)
    store.queue.add_entry(1, 1, "master", Priority.NORMAL, "dev")
    epochs, lanes, trains = LocalEpochs(), RecordingLanes(), set()
    handler = EventHandler(store, NoCommands(), lanes, lanes, bot_user_id=lambda: BOT,  # type: ignore[arg-type]
                           caches=ReadInvalidation(epochs), runs_train=lambda lane: lane in trains)
    return handler, epochs, lanes, trains


def deliver(handler: EventHandler, hook: str, body: dict) -> None:
    handler.handle({"kind": "gitlab", "event": hook, "key": f"idem:{next(keys)}", "body": body})


def push(ref: str = "refs/heads/feature", user_id: int = 5, changed: tuple[str, ...] = ("a.txt",)) -> dict:
    return {"object_kind": "push", "ref": ref, "user_id": user_id, "project_id": 1,
            "project": {"id": 1, "default_branch": "master"},
            "commits": [{"id": "c" * 40, "added": [], "modified": list(changed), "removed": []}],
            "total_commits_count": 1}


def job(status: str = "failed") -> dict:
    return {"object_kind": "build", "project_id": 1, "project": {"id": 1}, "sha": "d" * 40, "build_name": "test",
            "build_status": status, "build_allow_failure": False, "merge_request": {"iid": 1}}


MR_EVENTS = [
    ("Merge Request Hook", lambda: webhook_payload("merge_request_opened.json")),
    ("Pipeline Hook", lambda: webhook_payload("pipeline_event.json")),
    ("Job Hook", job),
    ("Push Hook", push),
]


@pytest.mark.parametrize("hook, body", MR_EVENTS, ids=[hook for hook, _ in MR_EVENTS])
def test_mr_webhooks_drop_the_projects_cached_mr_reads(world, hook, body):
    handler, epochs, _, _ = world
    before = epochs.current(merge_requests_scope(1))
    deliver(handler, hook, body())
    assert epochs.current(merge_requests_scope(1)) != before
    assert epochs.current(merge_requests_scope(2)) == ""
    assert epochs.current(config_scope(1)) == ""


def test_a_command_comment_drops_nothing(world):
    handler, epochs, _, _ = world
    note = webhook_payload("note_on_merge_request.json")
    note["object_attributes"]["note"] = "/merge-assist merge"
    deliver(handler, "Note Hook", note)
    assert epochs.current(merge_requests_scope(5)) == ""  # the command reads the MR fresh itself


def test_a_push_of_the_config_file_to_the_default_branch_drops_the_config(world):
    handler, epochs, _, _ = world
    deliver(handler, "Push Hook", push("refs/heads/feature", changed=(".merge-assist.yml",)))
    assert epochs.current(config_scope(1)) == ""
    deliver(handler, "Push Hook", push("refs/heads/master", changed=("README.md",)))
    assert epochs.current(config_scope(1)) == ""
    deliver(handler, "Push Hook", push("refs/heads/master", changed=(".merge-assist.yml",)))
    assert epochs.current(config_scope(1)) != ""


def test_the_bots_own_merge_drops_reads_but_wakes_nobody(world):
    handler, epochs, lanes, _ = world
    body = webhook_payload("merge_request_opened.json")
    body["object_attributes"]["action"] = "merge"
    body["user"]["id"] = BOT
    deliver(handler, "Merge Request Hook", body)
    assert lanes.woken == []
    assert epochs.current(merge_requests_scope(1)) != ""
    body["user"]["id"] = 5  # merged by someone else, outside the queue: the lane must record it
    deliver(handler, "Merge Request Hook", body)
    assert lanes.woken == [("drive", LANE)]


def test_an_mrs_own_pipeline_wakes_a_serial_lane_but_not_a_train(world):
    handler, epochs, lanes, trains = world
    deliver(handler, "Pipeline Hook", webhook_payload("pipeline_event.json"))
    deliver(handler, "Job Hook", job())
    assert lanes.woken == [("drive", LANE), ("job_failed", LANE)]
    trains.add(LANE)
    before = epochs.current(merge_requests_scope(1))
    deliver(handler, "Pipeline Hook", webhook_payload("pipeline_event.json"))
    deliver(handler, "Job Hook", job())
    assert lanes.woken == [("drive", LANE), ("job_failed", LANE)]
    assert epochs.current(merge_requests_scope(1)) != before  # the MR's pipeline changed all the same


class ConfigGitLab:
    def __init__(self) -> None:
        self.head, self.files = "sha1", {"sha1": "rules: {labels: {required: [ready]}}"}

    def get_branch_sha(self, project_id, branch):
        return self.head

    def get_file(self, project_id, path, ref):
        return self.files.get(ref)

    def post_note(self, project_id, iid, body):
        raise AssertionError("no comment expected")


def test_a_config_push_handled_by_one_process_reloads_the_config_in_another(tmp_path, engine, redis_url, redis_prefix):
    from merge_assist.adapters.read_cache import RedisEpochs
    from merge_assist.bot.config import ProjectConfig
    from merge_assist.rules.feedback import Feedback
    from merge_assist.rules.model import Project

    store = Store.open(f"sqlite:///{tmp_path / 'config.sqlite'}")
    migrate.upgrade(store.db)
    gitlab = ConfigGitLab()
    worker = ProjectConfig(gitlab, engine, store.projects, Feedback(gitlab), epochs=RedisEpochs(redis_url, redis_prefix))
    project = Project(1, "acme/app", default_branch="master")
    assert worker.options_for(project)["labels"]["required"] == ["ready"]
    gitlab.head, gitlab.files["sha2"] = "sha2", "rules: {labels: {required: [qa]}}"
    assert worker.options_for(project)["labels"]["required"] == ["ready"]  # kept: nothing said it changed
    other = EventHandler(store, NoCommands(), RecordingLanes(), RecordingLanes(), bot_user_id=lambda: BOT,  # type: ignore[arg-type]
                         caches=ReadInvalidation(RedisEpochs(redis_url, redis_prefix)))
    deliver(other, "Push Hook", push("refs/heads/master", changed=(".merge-assist.yml",)))
    assert worker.options_for(project)["labels"]["required"] == ["qa"]
