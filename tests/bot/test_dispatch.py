"""Event dispatch: a delivery handled twice at the same time acts once, and its second copy stays
queued until the first is done; a failed one is retried."""

from __future__ import annotations

import json
import threading
import time

import pytest

from merge_assist.adapters.read_cache import LocalEpochs, ReadInvalidation
from merge_assist.bot.dispatch import EventHandler
from merge_assist.rules.errors import HandledElsewhere
from merge_assist.storage import Store, migrate
from tests.helpers import webhook_payload

NOTE = webhook_payload("note_on_merge_request.json")


class SlowCommands:
    """Stands in for CommandService: slow, and failing on demand."""

    def __init__(self) -> None:
        self.executed: list[tuple] = []
        self.fail_next = False
        self.fail_after_sleep = False

    def known_commands(self):
        return ["merge", "help"]

    def execute(self, name, args, actor, project_id, iid, note_id):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("GitLab answered 502")
        time.sleep(0.3)
        if self.fail_after_sleep:
            self.fail_after_sleep = False
            raise RuntimeError("killed by the database restarting")
        self.executed.append((name, iid, note_id))

    def reply_unknown(self, *args):
        raise AssertionError("not expected")


class NoLanes:
    def drive(self, lane):
        raise AssertionError("no lane work expected")

    def job_failed(self, lane, sha, job_name):
        raise AssertionError("no lane work expected")


@pytest.fixture
def handler(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(store.db)
    commands = SlowCommands()
    handler = EventHandler(store, commands, NoLanes(), NoLanes(), bot_user_id=lambda: None, caches=ReadInvalidation(LocalEpochs()),
                           claim_seconds=30)
    return handler, commands


def note_event(key: str, text: str = "/merge-assist merge") -> dict:
    body = json.loads(json.dumps(NOTE))
    body["object_attributes"]["note"] = text
    return {"kind": "gitlab", "event": "Note Hook", "key": key, "body": body}


def test_the_same_delivery_handled_concurrently_acts_once(handler):
    handler, commands = handler
    outcomes: list[str] = []

    def handle() -> None:
        try:
            handler.handle(note_event("idem:1"))
            outcomes.append("handled")
        except HandledElsewhere:
            outcomes.append("elsewhere")

    threads = [threading.Thread(target=handle) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.handle(note_event("idem:1"))
    assert len(commands.executed) == 1
    assert sorted(outcomes) == ["elsewhere", "elsewhere", "handled"]


def test_a_copy_that_meets_a_live_claim_stays_queued_until_the_holder_is_done(handler):
    """The copy must not be acknowledged as a duplicate: the holder may still fail, and then the
    queue's retry of the copy is the only way the command gets carried out."""
    handler, commands = handler
    commands.fail_after_sleep = True
    holder = threading.Thread(target=lambda: pytest.raises(RuntimeError, handler.handle, note_event("idem:1")))
    holder.start()
    time.sleep(0.1)  # the holder is inside the command now
    with pytest.raises(HandledElsewhere):
        handler.handle(note_event("idem:1"))
    holder.join()
    assert commands.executed == []
    handler.handle(note_event("idem:1"))  # the queue offers the copy again: carried out now
    assert len(commands.executed) == 1


def test_an_edit_that_keeps_the_command_acts_once(handler):
    handler, commands = handler
    handler.handle(note_event("idem:1"))
    handler.handle(note_event("idem:2", "/merge-assist   MERGE"))
    assert len(commands.executed) == 1
    handler.handle(note_event("idem:3", "/merge-assist help"))
    assert [c[0] for c in commands.executed] == ["merge", "help"]


def test_a_failed_delivery_is_carried_out_on_retry(handler):
    handler, commands = handler
    commands.fail_next = True
    with pytest.raises(RuntimeError):
        handler.handle(note_event("idem:1"))
    handler.handle(note_event("idem:1"))
    assert len(commands.executed) == 1
