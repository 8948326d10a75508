"""Taking a slash command: what can be answered at once (help, link, unlink, notify, mistakes) is answered;
everything else is queued for the workers. No GitLab call happens here, so the acknowledgement
stays within Slack's 3 seconds however slow GitLab is."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from merge_assist.bot.slack_commands import LANE_COMMANDS, NOT_LINKED, NOT_ON_MERGE_REQUESTS, SlackCommandEvent
from merge_assist.bot.slack_link import CODE_TTL_SECONDS, LinkCodes
from merge_assist.bot.slack_text import SlashProblem, SlashRequest, is_project_path, parse_slash_text
from merge_assist.rules.commands import CommandSpec
from merge_assist.rules.model import Actor
from merge_assist.rules.ports import AuditLog
from merge_assist.storage.slack_links import SlackLinks

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

USERNAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
HELP = """*Merge Assist in Slack*: `/merge-assist <command> <MR>` runs a merge request command as on the merge request, with your GitLab rights; name the MR by its URL or as `group/project!iid`.
• `/merge-assist queue [group/project] [branch]`: the lanes in merge order, with state, reason and age
• `/merge-assist pause|resume <group/project> [branch]`: for Maintainers and the admin or project_owner role
• `/merge-assist link <your GitLab username>`: link your Slack account (then comment the code on a merge request); `/merge-assist unlink`
• `/merge-assist notify on|off`: a direct message when a merge request you queued merges or fails (linked accounts; off until you turn it on)
Unlinked Slack users can only read (`status`, `queue`, `help`) and only public projects."""
NOTIFY_USAGE = "Usage: `/merge-assist notify on|off` (without `on` or `off`: whether it is on)."
NOTIFY_NOT_LINKED = ("Direct messages go only to linked accounts, since they are about the merge requests your "
                     "GitLab user queued. Link your Slack account first with `/merge-assist link <your GitLab "
                     "username>`, then run `/merge-assist notify on`.")
NOTIFY_UNAVAILABLE = ("Direct messages are not available: this bot has no Slack bot token "
                      "(`MERGE_ASSIST_SLACK_BOT_TOKEN`), so it cannot message anyone. Ask its admins.")
NOTIFY_STATE = {True: "on: I send you a direct message when a merge request you queued merges or fails",
                False: "off: no direct messages about your merge requests (`/merge-assist notify on` to get them)"}


class Publisher(Protocol):
    def publish(self, event: dict[str, Any]) -> None: ...


@dataclass
class SlackIntake:
    gitlab_url: str | None
    links: SlackLinks
    codes: LinkCodes | None
    audit: AuditLog
    queue: Publisher
    commands: Callable[[], Mapping[str, CommandSpec]]
    first_time: Callable[[str], bool]
    can_message: bool = True  # a bot token is set, so direct messages can be sent

    @classmethod
    def for_runtime(cls, runtime: "Runtime") -> "SlackIntake":
        settings = runtime.settings
        codes = LinkCodes(settings.slack_signing_secret.reveal()) if settings.slack_signing_secret else None
        return cls(settings.gitlab_url, SlackLinks(runtime.store.db), codes, runtime.store.audit, runtime.queue,
                   runtime.engine.commands, lambda key: runtime.store.deliveries.first_time(key, "slack"),
                   settings.slack_bot_token is not None)

    def help(self) -> str:
        """The Slack commands, then the merge request commands the installed plugins offer."""
        offered = [f"• `{name}`: {spec.help.summary} ({spec.help.who_can_use})"
                   for name, spec in self.commands().items() if name not in NOT_ON_MERGE_REQUESTS]
        return HELP + "\n\n*Merge request commands:*\n" + "\n".join(offered)

    def accept(self, slack_user_id: str, text: str, response_url: str | None, signature: str) -> str:
        """The immediate answer to one command; queues the work when there is some.

        A signed request replayed within Slack's 5-minute window is answered but not carried out again.
        """
        if not self.first_time(f"slack-request:{signature[:100]}"):
            return "I already have this command."
        request = parse_slash_text(text, self.gitlab_url)
        if isinstance(request, SlashProblem):
            return request.message
        if request.name == "help":
            return self.help()
        user = self.links.by_slack(slack_user_id)
        actor = Actor(user.gitlab_user_id if user else None,
                      (user.gitlab_username if user else None) or f"slack:{slack_user_id}", "slack")
        if request.name == "link":
            return self._issue_code(slack_user_id, request.args, actor)
        if request.name == "unlink":
            removed = self.links.unlink(slack_user_id)
            self.audit.record(actor, "slack:unlink", f"slack:{slack_user_id}", "ok" if removed else "noop")
            return "Your Slack account is no longer linked." if removed else "Your Slack account was not linked."
        if request.name == "notify":
            return self._notify(slack_user_id, request, actor)
        spec = self.commands().get(request.name)
        if request.name not in LANE_COMMANDS and spec is None:
            return f"I don't know the command `{request.name[:40]}`.\n\n{self.help()}"
        if user is None and (request.name in ("pause", "resume") or (spec is not None and spec.mutates)):
            return NOT_LINKED
        target = request.target
        event = SlackCommandEvent(
            command=request.name, args=request.args, slack_user_id=slack_user_id,
            gitlab_user_id=user.gitlab_user_id if user else None, gitlab_username=user.gitlab_username if user else None,
            project_path=target.project_path if target else None, mr_iid=target.iid if target else None,
            response_url=response_url, received_at=time.time(),
        ).to_event()
        self.queue.publish({**event, "event_id": f"slack:{uuid.uuid4().hex[:16]}"})  # ties the worker's logs to it
        return f"On it: `{request.name}`" + (f" for {target}." if target else ".")

    def _issue_code(self, slack_user_id: str, args: tuple[str, ...], actor: Actor) -> str:
        if self.codes is None:
            return "Linking is not available: Slack is not configured on this bot."
        username = args[0].lstrip("@") if len(args) == 1 else ""
        if not username or len(username) > 255 or not all(c in USERNAME_CHARACTERS for c in username) \
                or is_project_path(username):
            return "Usage: `/merge-assist link <your GitLab username>`"
        code = self.codes.issue(slack_user_id, username)
        self.audit.record(actor, "slack:link-code", f"slack:{slack_user_id}", "ok", f"for GitLab user {username}")
        return (f"To link your Slack account to GitLab user `{username}`, comment this on any merge request of a "
                f"project this bot manages, as `{username}`, within {CODE_TTL_SECONDS // 60} minutes:\n"
                f"`/merge-assist link {code}`")

    def _notify(self, slack_user_id: str, request: SlashRequest, actor: Actor) -> str:
        """Show or set the opt-in to direct messages; a change, or a refusal, is audited."""
        choice = request.args[0].lower() if len(request.args) == 1 else None
        if len(request.args) > 1 or request.target is not None or choice not in (None, "on", "off"):
            return NOTIFY_USAGE
        target = f"slack:{slack_user_id}"
        if choice is None:
            current = self.links.notify_enabled(slack_user_id)
            return NOTIFY_NOT_LINKED if current is None else f"Direct messages are {NOTIFY_STATE[current]}."
        enabled = choice == "on"
        if enabled and not self.can_message:
            return NOTIFY_UNAVAILABLE
        previous = self.links.set_notify(slack_user_id, enabled)
        if previous is None:
            self.audit.record(actor, "slack:notify", target, "refused", "not linked")
            return NOTIFY_NOT_LINKED
        self.audit.record(actor, "slack:notify", target, "ok" if previous != enabled else "noop", choice)
        return f"Direct messages are now {NOTIFY_STATE[enabled]}."
