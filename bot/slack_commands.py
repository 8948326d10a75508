"""Slack commands, carried out by a worker (never on the web server's event loop) and answered
through the command's `response_url`.

MR commands (`merge`, `cancel`, `priority`, `retry`, `status`) go through the same command layer,
authorization, rules and audit as MR comments. `queue` lists lanes, `pause`/`resume` switch a
lane or a project for those allowed. A Slack user acts as the GitLab user id they linked; an
unlinked user only reads, and only public projects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from merge_assist.bot.slack_respond import SlackResponder
from merge_assist.rules.errors import GitLabError, NotFound
from merge_assist.rules.hookspecs import ACCESS_GUEST
from merge_assist.rules.model import Actor, LaneKey, QueueEntry
from merge_assist.rules.ports import GitLabPort
from merge_assist.rules.service import CommandService
from merge_assist.storage import Store

log = logging.getLogger("merge_assist.slack")
EVENT_KIND = "slack"
LANE_COMMANDS = frozenset({"queue", "pause", "resume"})
NOT_ON_MERGE_REQUESTS = frozenset({"help", "link"})  # answered by the web face itself
ACCESS_MAINTAINER = 40
PAUSE_ROLES = frozenset({"admin", "project_owner"})
MAX_LANES_SHOWN = 20
MAX_ENTRIES_SHOWN = 15


NOT_LINKED = ("Your Slack account is not linked to a GitLab user, so you can only read (`status`, `queue`, "
              "`help`). Link it with `/merge-assist link <your GitLab username>`.")


class SlackRefusal(Exception):
    """A command declined with an answer for the user (written to the audit log)."""


@dataclass(frozen=True)
class SlackCommandEvent:
    """What the web face hands to the workers for one slash command."""

    command: str
    args: tuple[str, ...]
    slack_user_id: str
    gitlab_user_id: int | None
    gitlab_username: str | None
    project_path: str | None = None
    mr_iid: int | None = None
    response_url: str | None = None
    received_at: float | None = None

    def to_event(self) -> dict[str, Any]:
        return {"kind": EVENT_KIND, **{name: getattr(self, name) for name in self.__dataclass_fields__},
                "args": list(self.args)}

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "SlackCommandEvent":
        """Raises TypeError or ValueError for an event that is not one (a poison message)."""
        def text(name: str) -> str | None:
            value = event.get(name)
            if value is not None and not isinstance(value, str):
                raise TypeError(name)
            return value

        def number(name: str) -> int | None:
            value = event.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(name)
            return value

        received_at = event.get("received_at")
        return cls(command=str(text("command") or ""), args=tuple(str(arg) for arg in event.get("args") or ()),
                   slack_user_id=str(text("slack_user_id") or ""), gitlab_user_id=number("gitlab_user_id"),
                   gitlab_username=text("gitlab_username"), project_path=text("project_path"),
                   mr_iid=number("mr_iid"), response_url=text("response_url"),
                   received_at=float(received_at) if isinstance(received_at, (int, float)) else None)

    @property
    def actor(self) -> Actor:
        return Actor(self.gitlab_user_id, self.gitlab_username or f"slack:{self.slack_user_id}", "slack")


class Publisher(Protocol):
    def publish(self, event: dict[str, Any]) -> None: ...


def age(since: datetime, now: datetime) -> str:
    minutes = int((now - since).total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


class SlackCommandRunner:
    def __init__(self, commands: CommandService, gitlab: GitLabPort, store: Store, queue: Publisher,
                 responder: SlackResponder, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._commands = commands
        self._gitlab = gitlab
        self._store = store
        self._queue = queue
        self._responder = responder
        self._now = now

    def handle(self, event: dict[str, Any]) -> None:
        """Carry out one command and answer; never raises, so a command is never run twice."""
        try:
            command = SlackCommandEvent.from_event(event)
        except (TypeError, ValueError) as exc:
            log.warning("dropping a malformed Slack event: %s", type(exc).__name__)
            return
        try:
            text = self.run(command)
        except SlackRefusal as refusal:
            text = str(refusal)
            target = f"{command.project_path}!{command.mr_iid}" if command.mr_iid else " ".join(command.args)[:200]
            self._store.audit.record(command.actor, f"slack:{command.command}", target, "refused", text[:500])
        except GitLabError as exc:
            log.warning("Slack command %s: GitLab error %s", command.command, type(exc).__name__)
            text = f"GitLab did not answer as expected ({type(exc).__name__}); try again in a moment."
        except Exception:
            log.exception("Slack command %s for %s failed", command.command, command.slack_user_id)
            text = f"`{command.command}` failed; the admins can see the log."
        self._responder.respond_later(command.response_url, text, command.received_at, command.slack_user_id)

    def run(self, command: SlackCommandEvent) -> str:
        if command.command == "queue":
            return self._queue_listing(command)
        if command.command in ("pause", "resume"):
            if command.gitlab_user_id is None:
                raise SlackRefusal(NOT_LINKED)
            return self._pause(command, paused=command.command == "pause")
        if command.command in NOT_ON_MERGE_REQUESTS:
            raise SlackRefusal(f"`{command.command}` does not take a merge request here; try `/merge-assist help`.")
        # Any command a plugin offers (merge, status, ...): the command layer authorizes it.
        return self._merge_request_command(command)

    # -- merge request commands, through the shared command layer -----------------------------

    def _merge_request_command(self, command: SlackCommandEvent) -> str:
        if command.project_path is None or command.mr_iid is None:
            raise SlackRefusal(f"Name the merge request: `/merge-assist {command.command} <MR URL or group/project!iid>`.")
        project_id = self._readable_project(command, command.project_path)
        reply = self._commands.execute(command.command, command.args, command.actor, project_id,
                                       command.mr_iid, None, post_reply=False)
        return reply.text

    def _readable_project(self, command: SlackCommandEvent, path: str) -> int:
        """The project's id when this Slack user may see it: public, or a linked member."""
        not_visible = SlackRefusal(f"I cannot find the project `{path}`, or you may not see it"
                                   + ("" if command.gitlab_user_id else
                                      " (unlinked Slack users only see public projects)") + ".")
        try:
            project = self._gitlab.get_project_by_path(path)
        except NotFound:
            project = None
        if project is None:
            raise not_visible
        if not self._can_read(command, project.id):
            raise not_visible
        return project.id

    def _can_read(self, command: SlackCommandEvent, project_id: int) -> bool:
        if command.gitlab_user_id is not None:
            return self._gitlab.get_access_level(project_id, command.gitlab_user_id) >= ACCESS_GUEST
        return self._gitlab.get_project(project_id).visibility == "public"

    # -- lanes: queue, pause, resume ------------------------------------------------------------

    def _lane_arguments(self, command: SlackCommandEvent) -> tuple[int | None, str | None]:
        words = list(command.args)
        if command.project_path is not None:
            raise SlackRefusal(f"`{command.command}` takes a project path and a branch, not a merge request.")
        if len(words) > 2:
            raise SlackRefusal(f"Usage: `/merge-assist {command.command} [group/project] [branch]`.")
        project_id = self._readable_project(command, words[0]) if words else None
        return project_id, words[1] if len(words) == 2 else None

    def _queue_listing(self, command: SlackCommandEvent) -> str:
        project_id, branch = self._lane_arguments(command)
        lanes = [lane for lane in self._store.queue.waiting_lanes()
                 if project_id in (None, lane.project_id) and branch in (None, lane.target_branch)]
        readable: dict[int, bool] = {}
        shown = []
        for lane in lanes:
            if lane.project_id not in readable:
                readable[lane.project_id] = project_id is not None or self._can_read(command, lane.project_id)
            if readable[lane.project_id]:
                shown.append(lane)
        if not shown:
            return "No merge requests are queued" + (" there." if project_id else " that you can see.")
        return "\n\n".join(self._lane_text(lane) for lane in shown[:MAX_LANES_SHOWN])

    def _lane_text(self, lane: LaneKey) -> str:
        project = self._store.projects.get(lane.project_id)
        path = project.path if project else str(lane.project_id)
        paused = self._store.queue.lane_paused(lane) or bool(project and project.paused)
        now = self._now()
        lines = [f"*{path}* → `{lane.target_branch}`" + (" (paused)" if paused else "")]
        entries = self._store.queue.lane_entries(lane)
        lines += [self._entry_line(position, entry, now)
                  for position, entry in enumerate(entries[:MAX_ENTRIES_SHOWN], start=1)]
        if len(entries) > MAX_ENTRIES_SHOWN:
            lines.append(f"… and {len(entries) - MAX_ENTRIES_SHOWN} more")
        return "\n".join(lines)

    @staticmethod
    def _entry_line(position: int, entry: QueueEntry, now: datetime) -> str:
        reason = f" ({entry.reason})" if entry.reason else ""
        return (f"{position}. !{entry.mr_iid} `{entry.state.value}`{reason}, {entry.priority.label}, "
                f"by {entry.requested_by}, queued {age(entry.enqueued_at, now)} ago")

    def _pause(self, command: SlackCommandEvent, *, paused: bool) -> str:
        project_id, branch = self._lane_arguments(command)
        if project_id is None:
            raise SlackRefusal(f"Usage: `/merge-assist {command.command} <group/project> [branch]`.")
        self._check_may_pause(command, project_id)
        if branch is None:
            if self._store.projects.get(project_id) is None:
                self._store.projects.register(project_id, self._gitlab.get_project(project_id).path)
            self._store.projects.set_paused(project_id, paused)
            lanes = [lane for lane in self._store.queue.waiting_lanes() if lane.project_id == project_id]
        else:
            self._store.queue.set_lane_paused(LaneKey(project_id, branch), paused)
            lanes = [LaneKey(project_id, branch)]
        target = f"{project_id}:{branch}" if branch else str(project_id)
        self._store.audit.record(command.actor, command.command, target, "ok")
        if not paused:
            for lane in lanes:
                self._queue.publish({"kind": "wake", "project_id": lane.project_id, "target_branch": lane.target_branch})
        where = f"`{branch}` of `{command.args[0]}`" if branch else f"every lane of `{command.args[0]}`"
        return (f"Paused {where}; queued merge requests stay queued." if paused
                else f"Resumed {where}.")

    def _check_may_pause(self, command: SlackCommandEvent, project_id: int) -> None:
        assert command.gitlab_user_id is not None  # run() refuses unlinked users first
        roles = self._store.users.roles_for(project_id=project_id, gitlab_user_id=command.gitlab_user_id)
        if roles & PAUSE_ROLES:
            return
        if self._gitlab.get_access_level(project_id, command.gitlab_user_id) >= ACCESS_MAINTAINER:
            return
        raise SlackRefusal(f"`{command.command}` needs Maintainer access to the project or the admin or "
                           "project_owner role.")
