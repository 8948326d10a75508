"""Slack channel messages: merged, failed (reason and pipeline link), and stuck (no progress for a while);
merged and failed also go as a direct message to whoever queued the merge request, if they opted in.

`SlackNotifications` is an ordinary plugin: it implements the notification hooks and describes the
`slack` options (`rules.slack.channel` in `.merge-assist.yml` or the project settings), so the
channel is validated like any rule option. `StuckWatch` is the periodic check for stuck entries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Protocol

from merge_assist.bot.periodic import PeriodicTask
from merge_assist.rules.errors import GitLabError
from merge_assist.rules.hookspecs import OptionError, RuleDescription, hookimpl
from merge_assist.rules.model import MergeRequest, Project, QueueEntry, RuleContext
from merge_assist.rules.ports import GitLabPort

log = logging.getLogger("merge_assist.slack.notify")
RULE = "slack"
NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


# Given the MR, a broken `.merge-assist.yml` found on the way is reported on it, not lost.
OptionsFor = Callable[[Project, MergeRequest], Mapping[str, Mapping[str, Any]]]
# A GitLab user id → the Slack user id to message directly, when that user opted in.
RecipientFor = Callable[[int], str | None]


class Sender(Protocol):
    def send(self, channel: str, text: str) -> None: ...


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, so that titles and reasons cannot inject links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_channel(value: str) -> bool:
    """`#name` or a channel id such as `C0123456789`."""
    if value.startswith("#"):
        return 1 < len(value) <= 81 and all(c in NAME_CHARACTERS for c in value[1:])
    return 8 <= len(value) <= 20 and value[0] in "CG" and all(c in ID_CHARACTERS for c in value)


def validate_options(options: Mapping[str, Any]) -> None:
    channel = options.get("channel", "")
    if channel and not is_channel(str(channel)):
        raise OptionError("channel", "expected `#channel-name` or a channel id such as C0123456789")


def mr_link(project: Project | None, project_id: int, iid: int, web_url: str = "") -> str:
    label = f"{project.path if project else project_id}!{iid}"
    return f"<{web_url}|{escape(label)}>" if web_url else escape(label)


def pipeline_url(context: RuleContext) -> str:
    head = context.merge_request.head_pipeline
    entry = context.entry
    if entry is not None and entry.pipeline_id and context.project.web_url:
        return f"{context.project.web_url}/-/pipelines/{entry.pipeline_id}"
    return head.web_url if head is not None else ""


class SlackNotifications:
    """Posts to the project's channel (else the server's default channel) through `sender`, and to
    the requester of a merged or failed entry when `recipient_for` names them."""

    MERGE_ASSIST_NAME = RULE

    def __init__(self, sender: Sender | None, default_channel: str | None,
                 recipient_for: RecipientFor = lambda gitlab_user_id: None) -> None:
        self._sender = sender
        self._default = default_channel or ""
        self._recipient_for = recipient_for
        self._options_for: OptionsFor | None = None

    def read_options_with(self, options_for: OptionsFor) -> None:
        """Where to read a project's options when a hook is called without them."""
        self._options_for = options_for

    def channel(self, options: Mapping[str, Any], project: Project | None = None,
                mr: MergeRequest | None = None) -> str:
        channel = options.get("channel")
        if not channel and project is not None and mr is not None and self._options_for is not None:
            try:
                channel = self._options_for(project, mr).get(RULE, {}).get("channel")
            except GitLabError as exc:
                log.info("cannot read the Slack channel of %s: %s", project.path, exc)
        return str(channel or self._default)

    @hookimpl
    def merge_assist_describe_rule(self) -> RuleDescription:
        return RuleDescription(
            RULE, "Not a check: where Slack messages about merged, failed and stuck merge requests go.",
            defaults={"channel": ""},
            option_help={"channel": "Slack channel (`#name` or id) for this project; empty: the server's default"},
            validate=validate_options,
        )

    @hookimpl
    def merge_assist_after_merge(self, context: RuleContext, merge_commit_sha: str | None) -> None:
        mr = context.merge_request
        self._post(context, f":white_check_mark: Merged "
                   f"{mr_link(context.project, mr.project_id, mr.iid, mr.web_url)} "
                   f"({escape(mr.title)}) into `{escape(mr.target_branch)}`.")

    @hookimpl
    def merge_assist_merge_failed(self, context: RuleContext, reason: str) -> None:
        mr = context.merge_request
        pipeline = pipeline_url(context)
        self._post(context, f":x: Could not merge {mr_link(context.project, mr.project_id, mr.iid, mr.web_url)} "
                   f"({escape(mr.title)}): {escape(reason)}" + (f"\nPipeline: <{pipeline}>" if pipeline else ""))

    def _post(self, context: RuleContext, text: str) -> None:
        if self._sender is None or context.options.get("enabled") is False:
            return
        channel = self.channel(context.options, context.project, context.merge_request)
        if channel:
            self._sender.send(channel, text)
        requester = context.entry.requested_by_gitlab_id if context.entry is not None else None
        recipient = self._recipient_for(requester) if requester is not None else None
        if recipient:
            self._sender.send(recipient, text)


class StuckEntries(Protocol):
    def all_entries(self, *, active_only: bool = False, limit: int = 500) -> list[QueueEntry]: ...


class StuckWatch:
    """Every `interval` seconds, tells each project's channel about entries without progress for
    `stuck_seconds`, once per entry and state (`first_time` is shared by every process)."""

    def __init__(self, notifications: SlackNotifications, sender: Sender, entries: StuckEntries,
                 gitlab: GitLabPort, options_for: OptionsFor,
                 first_time: Callable[[str], bool], stuck_seconds: float) -> None:
        self._notifications = notifications
        self._sender = sender
        self._entries = entries
        self._gitlab = gitlab
        self._options_for = options_for
        self._first_time = first_time
        self._stuck_seconds = stuck_seconds
        self._periodic = PeriodicTask("slack-stuck", min(max(stuck_seconds / 4, 0.2), 60.0), self.check)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def check(self, now: datetime | None = None) -> int:
        now = now or datetime.now(timezone.utc)
        told = 0
        for entry in self._entries.all_entries(active_only=True):
            if (now - entry.updated_at).total_seconds() < self._stuck_seconds:
                continue
            if self._tell(entry, now):
                told += 1
        return told

    def _tell(self, entry: QueueEntry, now: datetime) -> bool:
        try:
            project = self._gitlab.get_project(entry.project_id)
            mr = self._gitlab.get_merge_request(entry.project_id, entry.mr_iid)
            options = self._options_for(project, mr).get(RULE, {})
        except GitLabError as exc:
            log.info("stuck check: cannot read project %s: %s", entry.project_id, exc)
            return False
        channel = self._notifications.channel(options)
        if not channel or options.get("enabled") is False:
            return False
        if not self._first_time(f"slack-stuck:{entry.id}:{entry.state.value}:{entry.updated_at.isoformat()}"):
            return False
        seconds = int((now - entry.updated_at).total_seconds())
        waited = f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"
        web_url = f"{project.web_url}/-/merge_requests/{entry.mr_iid}" if project.web_url else ""
        reason = f" ({escape(entry.reason)})" if entry.reason else ""
        self._sender.send(channel, f":hourglass: {mr_link(project, entry.project_id, entry.mr_iid, web_url)} has made "
                          f"no progress for {waited}: `{entry.state.value}`{reason}.")
        return True
