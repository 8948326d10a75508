"""Self-service linking of a Slack user to a GitLab user, without an admin.

1. In Slack, `/merge-assist link <gitlab-username>` gives a one-time code, valid 15 minutes.
2. As that GitLab user, the person comments `/merge-assist link <code>` on any merge request of a
   managed project. The comment arrives through the authenticated webhook, so GitLab vouches for
   its author; the bot links the Slack user to the author's GitLab user id.

The code is an HMAC over (Slack user, GitLab username, expiry) with a key derived from the Slack
signing secret, so no table of pending codes is needed, every replica can check it, a forged
code fails, and a code copied by someone else fails too (it names the GitLab user it is for).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Callable

from merge_assist.rules.commands import CommandInvocation, CommandReply, CommandSpec
from merge_assist.rules.hookspecs import hookimpl
from merge_assist.rules.model import CommandHelp
from merge_assist.rules.ports import AuditLog
from merge_assist.storage.slack_links import SlackLinks

log = logging.getLogger("merge_assist.slack.link")
CODE_TTL_SECONDS = 15 * 60
KEY_CONTEXT = b"merge-assist slack link v1"

LINK_HELP = CommandHelp(
    "link", "Link your Slack account to your GitLab account: run `/merge-assist link <your GitLab username>` "
    "in Slack, then comment the code it gives you on any merge request here.",
    usage="/merge-assist link <code from Slack>",
    who_can_use="The GitLab user the code was issued for",
    examples=("/merge-assist link U024BE7LH.1767225600.MFRGGZDFMZTWQ2LK",),
)


class LinkCodes:
    """Issues and checks one-time link codes (`<slack user>.<expiry>.<mac>`)."""

    def __init__(self, signing_secret: str, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(signing_secret.encode(), KEY_CONTEXT, hashlib.sha256).digest()
        self._clock = clock

    def _mac(self, slack_user_id: str, gitlab_username: str, expires: int) -> str:
        message = f"{slack_user_id}\n{gitlab_username.lower()}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:15]
        return base64.b32encode(digest).decode()

    def issue(self, slack_user_id: str, gitlab_username: str) -> str:
        expires = int(self._clock()) + CODE_TTL_SECONDS
        return f"{slack_user_id}.{expires}.{self._mac(slack_user_id, gitlab_username, expires)}"

    def redeem(self, code: str, gitlab_username: str) -> str | None:
        """The Slack user the code was issued to, if it is genuine, unexpired and for this user."""
        parts = code.split(".")
        if len(parts) != 3 or not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        slack_user_id, expires_text, mac = parts
        expires = int(expires_text)
        if expires < self._clock() or not slack_user_id:
            return None
        expected = self._mac(slack_user_id, gitlab_username, expires)
        return slack_user_id if hmac.compare_digest(expected.encode(), mac.upper().encode()) else None


class SlackLinkCommand:
    """The GitLab side of linking: the `/merge-assist link <code>` comment."""

    MERGE_ASSIST_NAME = "slack_link"

    def __init__(self, codes: LinkCodes | None, links: SlackLinks, audit: AuditLog,
                 on_linked: Callable[[str, str], None] = lambda slack_user_id, gitlab_username: None) -> None:
        self._codes = codes
        self._links = links
        self._audit = audit
        self._on_linked = on_linked

    @hookimpl
    def merge_assist_register_commands(self) -> list[CommandSpec]:
        return [CommandSpec(LINK_HELP, self._redeem, mutates=False)]

    def _redeem(self, invocation: CommandInvocation) -> CommandReply:
        actor = invocation.actor
        if self._codes is None:
            return CommandReply("Slack is not configured on this bot.", ok=False)
        if actor.channel != "gitlab" or actor.gitlab_user_id is None:
            return CommandReply("Post the link code as a comment on a merge request, as yourself.", ok=False)
        if len(invocation.args) != 1:
            return CommandReply(f"Usage: `{LINK_HELP.usage}`", ok=False)
        slack_user_id = self._codes.redeem(invocation.args[0], actor.username)
        if slack_user_id is None:
            self._audit.record(actor, "slack:link", "slack:?", "refused", "invalid or expired code")
            return CommandReply("This link code is not valid for you (wrong user, expired or mistyped); "
                                "ask for a new one with `/merge-assist link <your GitLab username>` in Slack.",
                                ok=False)
        self._links.link(slack_user_id, actor.gitlab_user_id, actor.username)
        self._audit.record(actor, "slack:link", f"slack:{slack_user_id}", "ok",
                           f"gitlab user id {actor.gitlab_user_id}")
        log.info("linked Slack user %s to GitLab user id %s", slack_user_id, actor.gitlab_user_id)
        self._on_linked(slack_user_id, actor.username)
        return CommandReply(f"@{actor.username} your Slack account is now linked; Slack commands act as you.")
