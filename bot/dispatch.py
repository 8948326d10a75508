"""Turns queued events (GitLab webhooks, chat commands, wake-ups) into commands and lane work."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator, Protocol

from merge_assist.bot.parse import BadSyntax, ParsedCommand, UnknownCommand, parse_command
from merge_assist.rules.errors import HandledElsewhere
from merge_assist.rules.events import current_event_id
from merge_assist.rules.model import Actor, LaneKey
from merge_assist.rules.ports import EventQueue
from merge_assist.rules.service import CommandService
from merge_assist.storage import Store

log = logging.getLogger("merge_assist.dispatch")

NOTE_HOOK = "Note Hook"
MERGE_REQUEST_HOOK = "Merge Request Hook"
PIPELINE_HOOK = "Pipeline Hook"
JOB_HOOK = "Job Hook"
PUSH_HOOK = "Push Hook"
HANDLED_HOOKS = frozenset({NOTE_HOOK, MERGE_REQUEST_HOOK, PIPELINE_HOOK, JOB_HOOK, PUSH_HOOK})
CONFIG_FILE = ".merge-assist.yml"
TEMPORARY_BRANCHES = "merge-assist/"



class Lanes(Protocol):
    """What events ask of the lanes: bot.worker.LaneScheduler does it, LaneWaker asks for it
    through the queue (so no lane work runs inside a command or under a delivery's claim)."""

    def drive(self, lane: LaneKey) -> None: ...

    def job_failed(self, lane: LaneKey, sha: str, job_name: str) -> None: ...

    def car_pipeline(self, lane: LaneKey, sha: str, pipeline_id: int, status: str, web_url: str) -> None: ...


class LaneWaker:
    """Publishes lane work as queue events; a consumer (maybe in another process) carries it out."""

    def __init__(self, queue: EventQueue) -> None:
        self._queue = queue

    def _publish(self, event: dict[str, Any]) -> None:
        # The event id in scope travels with the work, so the lane's log lines name what woke it.
        self._queue.publish({**event, "event_id": current_event_id()})

    def drive(self, lane: LaneKey) -> None:
        self._publish({"kind": "wake", "project_id": lane.project_id, "target_branch": lane.target_branch})

    def job_failed(self, lane: LaneKey, sha: str, job_name: str) -> None:
        self._publish({"kind": "job_failed", "project_id": lane.project_id,
                       "target_branch": lane.target_branch, "sha": sha, "job": job_name})

    def car_pipeline(self, lane: LaneKey, sha: str, pipeline_id: int, status: str, web_url: str) -> None:
        self._publish({"kind": "car_pipeline", "project_id": lane.project_id,
                       "target_branch": lane.target_branch, "sha": sha, "pipeline_id": pipeline_id,
                       "status": status, "web_url": web_url})

FINAL_PIPELINE_STATUSES = frozenset({"success", "failed", "canceled", "skipped", "manual"})


def is_relevant(hook: str, body: dict[str, Any]) -> bool:
    """Whether a delivery can change anything for the queue; the rest is answered and dropped.

    Pipelines matter when they end, jobs when they fail (the pipeline may still run), comments
    when they mention the bot. This keeps a burst of CI webhooks from waking lanes for nothing.
    """
    attributes = body.get("object_attributes") or {}
    if hook == PIPELINE_HOOK:
        return attributes.get("status") in FINAL_PIPELINE_STATUSES
    if hook == JOB_HOOK:
        return body.get("build_status") == "failed" and not body.get("build_allow_failure")
    if hook == NOTE_HOOK:
        return "/merge-assist" in str(attributes.get("note") or "").lower()
    if hook == PUSH_HOOK:
        # A push to a lane's target moves the base of its train; the bot's own car branches don't matter.
        ref = str(body.get("ref") or "")
        return ref.startswith("refs/heads/") and not ref.startswith(f"refs/heads/{TEMPORARY_BRANCHES}")
    return hook == MERGE_REQUEST_HOOK


def touches_config(push: dict[str, Any]) -> bool:
    """Whether a push to the default branch may change `.merge-assist.yml`.

    GitLab lists at most 20 commits; when some are missing, assume it does.
    """
    commits = push.get("commits") or []
    if int(push.get("total_commits_count") or 0) > len(commits):
        return True
    return any(CONFIG_FILE in (c.get(kind) or ()) for c in commits for kind in ("added", "modified", "removed"))


class CachedReads(Protocol):
    """The caches webhooks invalidate (adapters.read_cache.ReadInvalidation), in every process."""

    def merge_requests_changed(self, project_id: int) -> None: ...

    def config_changed(self, project_id: int) -> None: ...


class EventHandler:
    """Handles one event; safe to call from several threads and processes at once."""

    def __init__(self, store: Store, commands: CommandService, lanes: Lanes, waker: Lanes, *,
                 bot_user_id: Callable[[], int | None], caches: CachedReads,
                 runs_train: Callable[[LaneKey], bool] = lambda lane: False, claim_seconds: float = 15.0) -> None:
        self._store = store
        self._commands = commands
        self._lanes = lanes
        self._waker = waker
        self._bot_user_id = bot_user_id
        self._caches = caches
        self._runs_train = runs_train
        # A claim older than this is taken as abandoned by a dead worker (keep it below the
        # queue's reclaim time, so the redelivered message finds it stale).
        self._claim_seconds = claim_seconds

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "gitlab":
            self._gitlab(event)
        elif kind == "command":
            self._chat_command(event)
        elif kind == "wake":
            self._lanes.drive(LaneKey(int(event["project_id"]), str(event["target_branch"])))
        elif kind == "car_pipeline":
            self._lanes.car_pipeline(LaneKey(int(event["project_id"]), str(event["target_branch"])), str(event["sha"]),
                                     int(event["pipeline_id"]), str(event["status"]), str(event.get("web_url", "")))
        elif kind == "job_failed":
            self._lanes.job_failed(LaneKey(int(event["project_id"]), str(event["target_branch"])),
                                   str(event["sha"]), str(event["job"]))
        else:
            log.warning("ignoring event of unknown kind %r", kind)

    # -- GitLab webhooks ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _once(self, key: str, event: str) -> Iterator[bool]:
        """Yields whether to act on `key`; marks it done after acting, frees it on failure.

        False only when `key` is done. While another live handler holds it, HandledElsewhere:
        that handler may still fail, so this copy must stay queued, not be acknowledged.
        """
        deliveries = self._store.deliveries
        if not deliveries.claim(key, event, self._claim_seconds):
            if not deliveries.seen(key):
                raise HandledElsewhere(f"{event} {key} is being handled by another worker")
            yield False
            return
        try:
            yield True
        except BaseException:
            deliveries.release(key)
            raise
        deliveries.mark(key, event)

    def _gitlab(self, event: dict[str, Any]) -> None:
        key, hook = str(event["key"]), str(event["event"])
        with self._once(key, hook) as act:
            if act:
                self._gitlab_event(hook, event["body"])
            else:
                log.info("duplicate delivery %s (%s) ignored", key, hook)

    def _gitlab_event(self, hook: str, body: dict[str, Any]) -> None:
        project = body.get("project") or {}
        project_id = int(body.get("project_id") or project.get("id") or 0)
        if project_id and self._store.projects.get(project_id) is None:
            self._store.projects.register(project_id, str(project.get("path_with_namespace", project_id)))
        if project_id and hook != NOTE_HOOK:  # a command comment changes no MR; the command reads it fresh
            # Before any lane is woken, so the lane's next look reads GitLab again.
            self._caches.merge_requests_changed(project_id)
        if hook == NOTE_HOOK:
            self._note(project_id, body)
        elif hook == MERGE_REQUEST_HOOK:
            self._merge_request_event(project_id, body)
        elif hook in (PIPELINE_HOOK, JOB_HOOK):
            self._ci_event(project_id, body)
        elif hook == PUSH_HOOK:
            self._push(project_id, body)

    def _note(self, project_id: int, body: dict[str, Any]) -> None:
        attributes = body.get("object_attributes") or {}
        user = body.get("user") or {}
        if attributes.get("noteable_type") != "MergeRequest" or attributes.get("system"):
            return
        if user.get("id") is not None and user.get("id") == self._bot_user_id():
            return
        parsed = parse_command(str(attributes.get("note") or ""), self._commands.known_commands())
        if parsed is None:
            return
        iid = int((body.get("merge_request") or {}).get("iid") or 0)
        note_id = int(attributes.get("id") or 0) or None
        actor = Actor(gitlab_user_id=user.get("id"), username=str(user.get("username", "unknown")), channel="gitlab")
        if isinstance(parsed, (UnknownCommand, BadSyntax)):
            if self._first_time(f"bad:{project_id}:{note_id}:{parsed.message}"):
                self._commands.reply_unknown(actor, project_id, iid, parsed.message)
            return
        # An edited comment is delivered again: act only if the command itself changed.
        with self._once(f"cmd:{project_id}:{note_id}:{parsed.text}", "command") as act:
            if act:
                self._commands.execute(parsed.name, parsed.args, actor, project_id, iid, note_id)
            else:
                log.info("command on note %s already carried out", note_id)

    def _first_time(self, key: str) -> bool:
        return self._store.deliveries.first_time(key, "command")

    def _merge_request_event(self, project_id: int, body: dict[str, Any]) -> None:
        """Only an MR with an active entry can change a lane (a push, a close, a draft…)."""
        attributes = body.get("object_attributes") or {}
        if attributes.get("action") == "merge" and self._by_bot(body.get("user") or {}):
            return  # the bot's own merge or landing: the lane that did it records it
        iid = attributes.get("iid")
        for lane in self._store.queue.lanes_for(project_id, sha=None, mr_iid=int(iid) if iid else None):
            self._waker.drive(lane)

    def _push(self, project_id: int, body: dict[str, Any]) -> None:
        default_branch = (body.get("project") or {}).get("default_branch")
        branch = str(body.get("ref") or "").removeprefix("refs/heads/")
        if branch == default_branch and touches_config(body):
            self._caches.config_changed(project_id)
        if self._by_bot({"id": body.get("user_id")}):
            return  # the bot's own landing: it already planned what follows
        self._wake_project(project_id, only_branch=branch)

    def _ci_event(self, project_id: int, body: dict[str, Any]) -> None:
        """Wake only the lanes this pipeline or job is about: a train car's commit, or an entry's
        tested SHA or MR."""
        attributes = body.get("object_attributes") or {}
        sha = attributes.get("sha") or body.get("sha")
        iid = (body.get("merge_request") or {}).get("iid")
        car_lane = self._store.cars.lane_for_commit(project_id, str(sha)) if sha else None
        if car_lane is not None:
            if body.get("object_kind") == "build":
                self._waker.job_failed(car_lane, str(sha), str(body.get("build_name") or "a job"))
            else:
                self._waker.car_pipeline(car_lane, str(sha), int(attributes.get("id") or 0),
                                         str(attributes.get("status") or ""), str(attributes.get("url") or ""))
            return
        for lane in self._store.queue.lanes_for(project_id, sha=sha, mr_iid=iid):
            if self._runs_train(lane):
                continue  # a train tests its cars; the MR's own pipeline decides nothing there
            if body.get("object_kind") == "build" and sha:
                self._waker.job_failed(lane, str(sha), str(body.get("build_name") or "a job"))
            else:
                self._waker.drive(lane)

    def _by_bot(self, user: dict[str, Any]) -> bool:
        return user.get("id") is not None and user.get("id") == self._bot_user_id()

    def _wake_project(self, project_id: int, only_branch: str | None = None) -> None:
        for lane in self._store.queue.waiting_lanes():
            if lane.project_id == project_id and only_branch in (None, lane.target_branch):
                self._waker.drive(lane)

    # -- chat and API commands ---------------------------------------------------------------

    def _chat_command(self, event: dict[str, Any]) -> None:
        actor = Actor(gitlab_user_id=event.get("gitlab_user_id"), username=str(event["username"]),
                      channel=str(event.get("channel", "slack")))
        parsed = parse_command(f"/merge-assist {event['text']}", self._commands.known_commands())
        if not isinstance(parsed, ParsedCommand):
            self._respond(event, parsed.message if parsed is not None else "Empty command.")
            return
        project_id = event.get("project_id") or self._commands.project_id_for(str(event.get("project_path", "")))
        if project_id is None:
            self._respond(event, f"I cannot find the project `{event.get('project_path')}` in GitLab.")
            return
        reply = self._commands.execute(parsed.name, parsed.args, actor, int(project_id),
                                       int(event["mr_iid"]), None, post_reply=False)
        self._respond(event, reply.text)

    @staticmethod
    def _respond(event: dict[str, Any], text: str) -> None:
        response_url = event.get("response_url")
        if response_url:
            from merge_assist.bot.slack import respond_to

            respond_to(str(response_url), text)
