"""The Slack building blocks on their own: command text, link codes, channel options, the Web API
sender (against the local fake of Slack) and the stuck check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from merge_assist.adapters.queues import InProcessQueue
from merge_assist.adapters.slack_notify import SlackSender, web_client
from merge_assist.bot.slack_commands import SlackCommandEvent, SlackCommandRunner
from merge_assist.bot.slack_link import CODE_TTL_SECONDS, LinkCodes
from merge_assist.bot.slack_notifications import SlackNotifications, StuckWatch
from merge_assist.bot.slack_respond import SlackResponder
from merge_assist.bot.slack_text import MergeRequestRef, SlashProblem, SlashRequest, parse_slash_text
from merge_assist.rules.config import ConfigError, parse_yaml_layer
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import EntryState, MergeRequest, Priority, Project, QueueEntry
from merge_assist.storage import Store, migrate
from tests.helpers import wait_for
from tests.slack_fake import FakeSlack

GITLAB = "https://gitlab.example.com"


@pytest.mark.parametrize("text, expected", [
    ("merge https://gitlab.example.com/acme/app/-/merge_requests/7", SlashRequest("merge", (), MergeRequestRef("acme/app", 7))),
    ("merge --Priority high <https://gitlab.example.com/a/b/c/-/merge_requests/12|!12>",
     SlashRequest("merge", ("--priority", "high"), MergeRequestRef("a/b/c", 12))),
    ("https://gitlab.example.com/a/b/-/merge_requests/3", SlashRequest("status", (), MergeRequestRef("a/b", 3))),
    ("cancel acme/app!4", SlashRequest("cancel", (), MergeRequestRef("acme/app", 4))),
    ("queue acme/app release/1", SlashRequest("queue", ("acme/app", "release/1"))),
    ("", SlashRequest("help", ())),
    ("merge https://evil.example.com/acme/app/-/merge_requests/7",
     SlashProblem("I only work with merge requests on gitlab.example.com; `evil.example.com` is not it.")),
    ("merge acme/app!1 acme/app!2", SlashProblem("Name one merge request per command.")),
])
def test_parse_slash_text(text: str, expected: SlashRequest | SlashProblem) -> None:
    assert parse_slash_text(text, GITLAB) == expected


@pytest.mark.parametrize("text", ["http://" * 700, "merge " + "<" * 3000, "x" + " " * 60000 + "y",
                                  "merge https://gitlab.example.com/" + "a/" * 2000 + "-/merge_requests/99999999999"])
def test_hostile_text_is_read_without_crashing(text: str) -> None:
    assert isinstance(parse_slash_text(text, GITLAB), (SlashRequest, SlashProblem))


def test_link_codes_are_bound_to_user_and_time() -> None:
    now = [1_000_000.0]
    codes = LinkCodes("secret", clock=lambda: now[0])
    code = codes.issue("U1", "alice")
    assert codes.redeem(code, "alice") == "U1"
    assert codes.redeem(code, "Alice") == "U1"  # GitLab usernames are case-insensitive
    assert codes.redeem(code, "mallory") is None
    assert LinkCodes("other secret", clock=lambda: now[0]).redeem(code, "alice") is None
    slack_user, expires, mac = code.split(".")
    assert codes.redeem(f"U2.{expires}.{mac}", "alice") is None
    assert codes.redeem(f"{slack_user}.{int(expires) + 60}.{mac}", "alice") is None
    now[0] += CODE_TTL_SECONDS + 1
    assert codes.redeem(code, "alice") is None


def test_channel_option_is_validated_with_its_key() -> None:
    rules = [SlackNotifications(None, None).merge_assist_describe_rule()]
    assert parse_yaml_layer(".merge-assist.yml", "rules:\n  slack: {channel: '#merges'}\n", rules) == \
        {"rules": {"slack": {"channel": "#merges"}}}
    with pytest.raises(ConfigError, match="channel"):
        parse_yaml_layer(".merge-assist.yml", "rules:\n  slack: {channel: 'not a channel'}\n", rules)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def test_sender_delivers_and_gives_up_with_a_metric(slack: FakeSlack, recording: RecordingMetrics) -> None:
    sender = SlackSender(web_client("xoxb-test", slack.api_url), attempts=2, backoff_seconds=0.01)
    sender.start()
    try:
        sender.send("#merges", "hello")
        wait_for(lambda: slack.channel_texts("#merges") == ["hello"], message="delivery")
        assert recording.count("slack_message_sent") == 1
        slack.mode = "error"
        sender.send("#merges", "lost")
        wait_for(lambda: recording.count("slack_message_dropped", "undeliverable") == 1, message="the drop")
        assert recording.count("slack_failure", "notify") == 1
        assert slack.channel_texts("#merges") == ["hello"]
    finally:
        sender.stop()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, channel: str, text: str) -> None:
        self.sent.append((channel, text))


class OneEntry:
    def __init__(self, entry: QueueEntry) -> None:
        self.entry = entry

    def all_entries(self, *, active_only: bool = False, limit: int = 500) -> list[QueueEntry]:
        return [self.entry]


class OneProject:
    def get_project(self, project_id: int) -> Project:
        return Project(project_id, "acme/app", web_url="https://gitlab.example.com/acme/app")

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequest:
        return MergeRequest(project_id, iid, "Stuck", 1, "alice", "feature", "main", "opened", "abc")


def test_stuck_check_tells_the_channel_once_per_state() -> None:
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    entry = QueueEntry(1, 5, 9, "main", Priority.NORMAL, EntryState.WAITING_PIPELINE, "alice", started, started,
                       reason="waiting for pipeline 3")
    recorder, seen = Recorder(), set()

    def first_time(key: str) -> bool:
        if key in seen:
            return False
        seen.add(key)
        return True

    watch = StuckWatch(SlackNotifications(recorder, "#default"), recorder, OneEntry(entry), OneProject(),
                       lambda project, mr: {"slack": {"channel": "#app"}}, first_time, stuck_seconds=600)
    assert watch.check(now=started + timedelta(minutes=5)) == 0
    assert watch.check(now=started + timedelta(minutes=11)) == 1
    assert watch.check(now=started + timedelta(minutes=20)) == 0
    [(channel, text)] = recorder.sent
    assert channel == "#app" and "acme/app!9" in text and "11 min" in text and "waiting for pipeline 3" in text


def test_worker_side_never_raises_on_poison_or_unanswerable_commands(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(store.db)
    runner = SlackCommandRunner(None, None, store, InProcessQueue(), SlackResponder())  # type: ignore[arg-type]
    runner.handle({"kind": "slack", "command": "merge", "gitlab_user_id": "not a number"})
    unanswerable = SlackCommandEvent("pause", (), "U1", None, None, response_url="http://[::1", received_at=0.0)
    runner.handle(unanswerable.to_event())
    [refusal] = store.audit.entries(action="slack:pause")
    assert refusal.outcome == "refused" and "not linked" in refusal.detail
    store.db.dispose()


def test_an_answer_after_the_response_url_expired_goes_as_a_direct_message() -> None:
    recorder = Recorder()
    responder = SlackResponder(("https://hooks.slack.com",), clock=lambda: 10_000.0, direct_message=recorder.send)
    assert responder.respond("https://hooks.slack.com/commands/1", "late", received_at=10_000.0 - 31 * 60,
                             slack_user_id="U1") is False
    assert recorder.sent == [("U1", "late")]
