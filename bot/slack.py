"""Slack: `/merge-assist <command> <MR URL>` through slack-bolt, acting as the linked GitLab user."""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from starlette.routing import BaseRoute, Route

from merge_assist.rules.metrics import METRICS

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.slack")
SLACK_LINK = re.compile(r"<(?P<url>https?://[^|>]+)(?:\|[^>]*)?>")
MR_URL = re.compile(r"https?://\S+?/(?P<path>[^\s]+?)/-/merge_requests/(?P<iid>\d+)")


def respond_to(response_url: str, text: str) -> None:
    try:
        httpx.post(response_url, json={"response_type": "ephemeral", "text": text}, timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        METRICS.slack_failure("respond")
        log.warning("could not answer on Slack: %s", type(exc).__name__)


def parse_slack_text(text: str) -> tuple[str, str, int] | None:
    """`merge --priority high https://gitlab/x/y/-/merge_requests/3` → (command text, path, iid)."""
    text = SLACK_LINK.sub(lambda m: m.group("url"), text)
    match = MR_URL.search(text)
    if match is None:
        return None
    command = (text[: match.start()] + text[match.end():]).strip()
    return command or "status", match.group("path"), int(match.group("iid"))


def build_bolt_app(runtime: "Runtime") -> Any:
    from slack_bolt import App
    from slack_bolt.authorization import AuthorizeResult

    settings = runtime.settings
    bot_token = settings.slack_bot_token.reveal() if settings.slack_bot_token else None

    def authorize(enterprise_id: str | None, team_id: str | None, logger: Any) -> AuthorizeResult:
        # Answers go to response_url; no Slack Web API call (not even auth.test) on the request path.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=bot_token)

    app = App(
        signing_secret=settings.slack_signing_secret.reveal() if settings.slack_signing_secret else None,
        authorize=authorize,
    )

    @app.command("/merge-assist")
    def merge_assist(ack: Any, command: dict[str, Any], respond: Any) -> None:
        parsed = parse_slack_text(str(command.get("text", "")))
        if parsed is None:
            ack("Usage: `/merge-assist <command> <merge request URL>`, e.g. "
                "`/merge-assist merge https://gitlab.example.com/group/project/-/merge_requests/7`")
            return
        text, path, iid = parsed
        user = runtime.store.users.by_slack(str(command.get("user_id")))
        if user is None and text.split()[0] not in ("status", "help"):
            ack("Your Slack account is not linked to a GitLab user, so you can only use `status` and `help`. "
                "Ask an admin to run `merge-assist link-slack`.")
            return
        runtime.queue.publish({
            "kind": "command", "channel": "slack", "text": text, "project_path": path, "mr_iid": iid,
            "username": user.gitlab_username if user else str(command.get("user_name", "slack-user")),
            "gitlab_user_id": user.gitlab_user_id if user else None,
            "response_url": command.get("response_url"),
            "event_id": f"slack:{command.get('trigger_id') or uuid.uuid4().hex}",
        })
        # Acknowledge within Slack's 3 seconds; the worker answers through response_url.
        ack(f"On it: `{text}` for {path}!{iid}.")

    return app


def slack_routes(runtime: "Runtime") -> list[BaseRoute]:
    if runtime.settings.slack_signing_secret is None:
        return []
    from slack_bolt.adapter.starlette import SlackRequestHandler

    handler = SlackRequestHandler(build_bolt_app(runtime))

    async def events(request: Any) -> Any:
        return await handler.handle(request)

    return [Route("/slack/events", events, methods=["POST"])]
