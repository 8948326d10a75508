"""Slack end to end, on the GitLab simulator with a local fake of Slack (Web API and response_url):
commands from linked and unlinked users, the queue, channel messages (merged, failed, stuck),
direct messages to requesters who opted in, self-service linking, a Slack outage, and the
acknowledgement while GitLab is slow."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

import httpx
import pytest

from gitlab_sim import Simulator
from gitlab_sim.pipelines import PipelinePlan
from merge_assist.bot.settings import Secret
from merge_assist.rules.model import EntryState
from merge_assist.storage.slack_links import SlackLinks
from tests.e2e.harness import Bot, World, start_embedded, start_production
from tests.helpers import wait_for
from tests.slack_fake import FakeSlack

SIGNING_SECRET = "slack-signing-secret"
CHANNEL = "#merges"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def start_slack_bot(sim: Simulator, world: World, tmp_path: Path, slack: FakeSlack, **overrides: Any) -> Bot:
    return start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}", slack_signing_secret=Secret(SIGNING_SECRET),
                          slack_bot_token=Secret("xoxb-test"), slack_api_url=slack.api_url,
                          slack_response_origins=(slack.origin,), slack_channel=CHANNEL, **overrides)


@pytest.fixture
def slack_bot(sim: Simulator, world: World, tmp_path: Path, slack: FakeSlack) -> Iterator[Bot]:
    bot = start_slack_bot(sim, world, tmp_path, slack)
    yield bot
    bot.stop()


def slash_command(bot: Bot, text: str, user_id: str, response_url: str, secret: str = SIGNING_SECRET,
                  timestamp: int | None = None, timeout: float = 10.0) -> httpx.Response:
    body = urlencode({
        "token": "deprecated", "team_id": "T1", "team_domain": "acme", "channel_id": "C1",
        "channel_name": "dev", "user_id": user_id, "user_name": "someone", "command": "/merge-assist",
        "text": text, "api_app_id": "A1", "response_url": response_url, "trigger_id": "1.2.3",
    })
    ts = str(timestamp or int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return httpx.post(f"{bot.url}/slack/events", content=body, timeout=timeout, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature})


def mr_url(world: World, iid: int) -> str:
    return f"{world.sim.url}/{world.project.path_with_namespace}/-/merge_requests/{iid}"


def link(bot: Bot, world: World, slack_user: str = "U-ALICE") -> None:
    SlackLinks(bot.store.db).link(slack_user, world.dev.id, world.dev.username)


def opt_in(bot: Bot, slack: FakeSlack, slack_user: str = "U-ALICE", choice: str = "on") -> None:
    answer = slash_command(bot, f"notify {choice}", slack_user, slack.response_url).json()["text"]
    assert f"Direct messages are now {choice}" in answer


def merge_and_wait(bot: Bot, world: World, slack: FakeSlack, iid: int, slack_user: str, state: EntryState) -> None:
    slash_command(bot, f"merge {mr_url(world, iid)}", slack_user, slack.response_url)
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    world.sim.clock.advance(700)
    bot.wait_state(world, iid, state)


def answered(slack: FakeSlack, fragment: str) -> str:
    return wait_for(lambda: next((t for t in slack.response_texts() if fragment in t), None),  # type: ignore[no-any-return]
                    message=f"a Slack answer containing {fragment!r}")


@pytest.fixture(params=["embedded", "production"])
def any_mode_slack_bot(request: pytest.FixtureRequest, sim: Simulator, world: World, tmp_path: Path,
                       slack: FakeSlack) -> Iterator[Bot]:
    """The Slack bot embedded, or as `serve` + `worker` processes on PostgreSQL and Redis."""
    if request.param == "embedded":
        bot = start_slack_bot(sim, world, tmp_path, slack)
    else:
        workdir = tmp_path / "bot"
        workdir.mkdir()
        bot = start_production(sim, world, request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url"),
                               request.getfixturevalue("redis_prefix"), workdir, extra_env={
                                   "MERGE_ASSIST_SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                   "MERGE_ASSIST_SLACK_BOT_TOKEN": "xoxb-test",
                                   "MERGE_ASSIST_SLACK_API_URL": slack.api_url,
                                   "MERGE_ASSIST_SLACK_RESPONSE_ORIGINS": slack.origin,
                                   "MERGE_ASSIST_SLACK_CHANNEL": CHANNEL})
    yield bot
    bot.stop()


def test_linked_user_merges_by_url_and_the_channel_hears(any_mode_slack_bot: Bot, world: World,
                                                         slack: FakeSlack) -> None:
    slack_bot = any_mode_slack_bot
    link(slack_bot, world)
    iid = world.mr("from-slack")
    ack = slash_command(slack_bot, f"merge <{mr_url(world, iid)}|!{iid}>", "U-ALICE", slack.response_url)
    assert ack.status_code == 200 and "On it" in ack.json()["text"]
    entry = slack_bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    assert entry.requested_by == "alice"
    answered(slack, "Queued with priority normal")
    world.sim.clock.advance(700)
    slack_bot.wait_state(world, iid, EntryState.MERGED)
    merged = wait_for(lambda: slack.channel_texts(CHANNEL), message="channel message")
    assert f"{world.project.path_with_namespace}!{iid}" in merged[0] and "Merged" in merged[0]
    audit = slack_bot.store.audit.entries(target=f"{world.project.id}!{iid}", action="enqueue")
    assert audit and audit[0].channel == "slack" and audit[0].actor == "alice"


def test_unlinked_user_can_only_read(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    iid = world.mr("unlinked")
    refused = slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-NOBODY", slack.response_url)
    assert refused.status_code == 200 and "not linked" in refused.json()["text"]
    helped = slash_command(slack_bot, "help", "U-NOBODY", slack.response_url)
    assert "queue" in helped.json()["text"]
    # The project is private: an unlinked user learns nothing about its merge requests.
    slash_command(slack_bot, f"status {world.project.path_with_namespace}!{iid}", "U-NOBODY", slack.response_url)
    answer = answered(slack, "cannot find the project")
    assert "public" in answer and "pipeline" not in answer
    # Nor does the queue show a private project's lanes to an unlinked user.
    link(slack_bot, world)
    slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-ALICE", slack.response_url)
    slack_bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    slash_command(slack_bot, "queue", "U-NOBODY", slack.response_url)
    assert "that you can see" in answered(slack, "No merge requests are queued")


def test_status_of_a_public_project_for_an_unlinked_user(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    world.project.visibility = "public"
    iid = world.mr("public")
    slash_command(slack_bot, f"status {mr_url(world, iid)}", "U-NOBODY", slack.response_url)
    answered(slack, "pipeline")


def test_queue_shows_positions(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    link(slack_bot, world)
    first, second = world.mr("first"), world.mr("second")
    for iid in (first, second):
        slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-ALICE", slack.response_url)
        slack_bot.wait_state(world, iid, EntryState.WAITING_PIPELINE if iid == first else EntryState.QUEUED)
    slash_command(slack_bot, f"queue {world.project.path_with_namespace} main", "U-ALICE", slack.response_url)
    listing = answered(slack, "→ `main`")
    assert f"1. !{first} `waiting_pipeline`" in listing and f"2. !{second} `queued`" in listing


def test_pause_needs_maintainer_and_resume_wakes_the_lane(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    link(slack_bot, world)
    SlackLinks(slack_bot.store.db).link("U-BOB", world.maintainer.id, world.maintainer.username)
    path = world.project.path_with_namespace
    slash_command(slack_bot, f"pause {path} main", "U-ALICE", slack.response_url)
    answered(slack, "needs Maintainer access")
    slash_command(slack_bot, f"pause {path} main", "U-BOB", slack.response_url)
    answered(slack, "Paused `main`")
    from merge_assist.rules.model import LaneKey

    assert slack_bot.store.queue.lane_paused(LaneKey(world.project.id, "main"))


def test_failed_pipeline_and_stuck_entry_reach_the_channel(sim: Simulator, world: World, tmp_path: Path,
                                                          slack: FakeSlack) -> None:
    bot = start_slack_bot(sim, world, tmp_path, slack, slack_stuck_minutes=0.02)
    project_channel = "#app-merges"  # the project's own channel wins over the server's default
    bot.store.projects.register(world.project.id, world.project.path_with_namespace,
                                settings={"rules": {"slack": {"channel": project_channel}}})
    try:
        link(bot, world)
        stuck = world.mr("stuck")
        slash_command(bot, f"merge {mr_url(world, stuck)}", "U-ALICE", slack.response_url)
        bot.wait_state(world, stuck, EntryState.WAITING_PIPELINE)
        wait_for(lambda: any("no progress" in t and f"!{stuck}" in t for t in slack.channel_texts(project_channel)),
                 message="stuck message")
        world.sim.clock.advance(700)
        bot.wait_state(world, stuck, EntryState.MERGED)
        world.sim.set_pipeline_plan(PipelinePlan(outcome="fail", fail_when="early", duration=600))
        broken = world.mr("broken")
        slash_command(bot, f"merge {mr_url(world, broken)}", "U-ALICE", slack.response_url)
        bot.wait_state(world, broken, EntryState.WAITING_PIPELINE)
        world.sim.clock.advance(700)
        bot.wait_state(world, broken, EntryState.FAILED)
        failed = wait_for(lambda: next((t for t in slack.channel_texts(project_channel) if "Could not merge" in t), None),
                          message="failure message")
        assert f"!{broken}" in failed and "/-/pipelines/" in failed
        assert slack.channel_texts(CHANNEL) == []
    finally:
        bot.stop()


def test_an_opted_in_requester_gets_a_direct_message_when_merged_and_when_failed(
        any_mode_slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    slack_bot = any_mode_slack_bot
    link(slack_bot, world)
    SlackLinks(slack_bot.store.db).link("U-BOB", world.maintainer.id, world.maintainer.username)
    opt_in(slack_bot, slack, "U-BOB")  # opted in, but queues nothing: hears nothing
    opt_in(slack_bot, slack)
    path = world.project.path_with_namespace
    merged = world.mr("dm-merged")
    merge_and_wait(slack_bot, world, slack, merged, "U-ALICE", EntryState.MERGED)
    [direct] = wait_for(lambda: slack.channel_texts("U-ALICE"), message="a direct message on the merge")
    assert direct.startswith(":white_check_mark: Merged") and f"{path}!{merged}" in direct
    assert direct in slack.channel_texts(CHANNEL)  # the same text as the channel's
    world.sim.set_pipeline_plan(PipelinePlan(outcome="fail", fail_when="early", duration=600))
    broken = world.mr("dm-broken")
    merge_and_wait(slack_bot, world, slack, broken, "U-ALICE", EntryState.FAILED)
    failed = wait_for(lambda: next((t for t in slack.channel_texts("U-ALICE") if "Could not merge" in t), None),
                      message="a direct message on the failure")
    entry = slack_bot.entry(broken, world.project.id)
    assert entry is not None and entry.requested_by_gitlab_id == world.dev.id
    pipeline = world.pipelines_of(broken)[-1]
    assert f"{path}!{broken}" in failed and entry.reason in failed and f"/-/pipelines/{pipeline.id}>" in failed
    assert slack.channel_texts("U-BOB") == []
    [change] = slack_bot.store.audit.entries(action="slack:notify", target="slack:U-ALICE")
    assert (change.actor, change.channel, change.outcome, change.detail) == ("alice", "slack", "ok", "on")


def test_an_opted_out_requester_gets_no_direct_message(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    link(slack_bot, world)
    SlackLinks(slack_bot.store.db).link("U-BOB", world.maintainer.id, world.maintainer.username)
    never = world.mr("dm-never")  # alice never opted in: off by default
    merge_and_wait(slack_bot, world, slack, never, "U-ALICE", EntryState.MERGED)
    opt_in(slack_bot, slack)
    opt_in(slack_bot, slack, choice="off")
    switched_off = world.mr("dm-off")
    merge_and_wait(slack_bot, world, slack, switched_off, "U-ALICE", EntryState.MERGED)
    # Bob's direct message, queued on the one sender after anything about alice's merges, is the sync point.
    opt_in(slack_bot, slack, "U-BOB")
    bobs = world.mr("dm-bob", author=world.maintainer)
    merge_and_wait(slack_bot, world, slack, bobs, "U-BOB", EntryState.MERGED)
    wait_for(lambda: slack.channel_texts("U-BOB"), message="bob's direct message")
    assert slack.channel_texts("U-ALICE") == []
    assert sum("Merged" in t for t in slack.channel_texts(CHANNEL)) == 3
    status = slash_command(slack_bot, "notify", "U-ALICE", slack.response_url).json()["text"]
    assert "Direct messages are off" in status


def test_notify_is_refused_to_an_unlinked_user(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    for text in ("notify on", "notify"):
        answer = slash_command(slack_bot, text, "U-NOBODY", slack.response_url).json()["text"]
        assert "only to linked accounts" in answer and "/merge-assist link" in answer
    [refusal] = slack_bot.store.audit.entries(action="slack:notify")
    assert (refusal.actor, refusal.target, refusal.outcome) == ("slack:U-NOBODY", "slack:U-NOBODY", "refused")
    helped = slash_command(slack_bot, "help", "U-NOBODY", slack.response_url).json()["text"]
    assert "/merge-assist notify on|off" in helped


def test_linking_with_the_one_time_code(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    links = SlackLinks(slack_bot.store.db)
    iid = world.mr("linking")
    ack = slash_command(slack_bot, "link alice", "U-ALICE", slack.response_url).json()["text"]
    code = ack.split("/merge-assist link ", 1)[1].split("`", 1)[0]
    # Someone else posting alice's code, or alice posting a forged one, links nothing.
    world.comment(iid, world.maintainer, f"/merge-assist link {code}")
    forged = code.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
    world.comment(iid, world.dev, f"/merge-assist link {forged}")
    wait_for(lambda: sum("not valid" in n for n in world.notes(iid)) == 2, message="two refusals")
    assert links.by_slack("U-ALICE") is None
    world.comment(iid, world.dev, f"/merge-assist link {code}")
    linked = wait_for(lambda: links.by_slack("U-ALICE"), message="the link")
    assert linked.gitlab_user_id == world.dev.id
    wait_for(lambda: slack.channel_texts("U-ALICE"), message="a direct message confirming the link")
    assert slack_bot.store.audit.entries(action="slack:link")
    slash_command(slack_bot, "unlink", "U-ALICE", slack.response_url)
    assert links.by_slack("U-ALICE") is None


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_slack_outage_delays_no_merge(slack_bot: Bot, world: World, slack: FakeSlack, mode: str) -> None:
    link(slack_bot, world)
    opt_in(slack_bot, slack)  # the merged messages go to the channel and to alice directly
    slack.mode = mode
    first, second = world.mr("outage-1"), world.mr("outage-2")
    started = time.monotonic()
    for iid in (first, second):
        slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-ALICE", slack.response_url)
    slack_bot.wait_state(world, first, EntryState.WAITING_PIPELINE)

    def both_merged() -> bool:
        world.sim.clock.advance(100)
        return all(world.state(iid) == "merged" for iid in (first, second))

    wait_for(both_merged, timeout=60, interval=0.2, message="both merges")
    took = time.monotonic() - started
    print(f"both merged in {took:.1f}s while every Slack Web API call {'failed' if mode == 'error' else 'hung'}")
    # The lane waiting on the first merge's two messages (channel, direct) before the second merge
    # would cost at least twice the sender's retries: in both modes well over 15 s; the merges
    # themselves take a few seconds.
    assert took < 15
    assert slack.attempts >= 1 and slack.messages == []


def test_acknowledgement_while_gitlab_is_slow(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    link(slack_bot, world)
    iid = world.mr("slow-gitlab")
    world.sim.backend.response_delay = 5.0
    started = time.perf_counter()
    # Slack gives up after 3 seconds; the client does the same here.
    ack = slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-ALICE", slack.response_url, timeout=3.0)
    took = time.perf_counter() - started
    print(f"acknowledged in {took:.3f}s with every GitLab answer delayed by 5s")
    assert ack.status_code == 200 and "On it" in ack.json()["text"]
    assert took < 1.5  # well inside the 3 s, not just within them
    world.sim.backend.response_delay = 0.0
    answered(slack, "Queued")


@pytest.mark.parametrize("secret, age", [("forged-secret", 0), (SIGNING_SECRET, 600)])
def test_forged_or_replayed_requests_are_rejected(slack_bot: Bot, world: World, slack: FakeSlack,
                                                  secret: str, age: int) -> None:
    answer = slash_command(slack_bot, f"merge {mr_url(world, 1)}", "U-ALICE", slack.response_url, secret=secret,
                           timestamp=int(time.time()) - age)
    assert answer.status_code == 401
    assert slack_bot.store.queue.all_entries() == []


def test_response_url_outside_slack_is_refused(slack_bot: Bot, world: World, slack: FakeSlack) -> None:
    link(slack_bot, world)
    iid = world.mr("evil")
    answer = slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-ALICE", "https://attacker.example/x")
    assert answer.status_code == 400
    assert slack_bot.entry(iid, world.project.id) is None
