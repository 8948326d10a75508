"""`POST /slack/events`: signed slash commands, acknowledged at once; the work goes to the workers.

Order of checks, so that nothing unauthenticated is parsed and nothing can stall the server:
size cap → timestamp and signature over the raw bytes → strict UTF-8 and form decoding → a typed
model of the fields used. What is wrong answers 4xx; a signed request never answers 5xx. The
blocking part (a database read, the queue publish) runs in a thread, off the event loop, and no
GitLab call happens before the acknowledgement, so Slack's 3 seconds hold however slow GitLab is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from merge_assist.bot.slack_intake import SlackIntake
from merge_assist.bot.slack_respond import SLACK_ORIGINS, SlackResponder

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.slack")
MAX_BODY_BYTES = 32 * 1024
MAX_CLOCK_SKEW_SECONDS = 300
MAX_TEXT_CHARS = 4000
ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SlashCommand:
    """The fields of a slash command the bot uses, validated."""

    user_id: str
    text: str
    response_url: str | None

    @classmethod
    def from_form(cls, form: dict[str, list[str]]) -> "SlashCommand":
        def one(name: str, required: bool = True) -> str | None:
            values = form.get(name) or []
            if len(values) > 1 or (required and not values):
                raise BadRequest(400, f"expected one `{name}`")
            if values and "\x00" in values[0]:  # Slack never sends it; the databases refuse it
                raise BadRequest(400, f"`{name}` holds a NUL character")
            return values[0] if values else None

        user_id = one("user_id") or ""
        if not 1 <= len(user_id) <= 64 or not all(c in ID_CHARACTERS for c in user_id):
            raise BadRequest(400, "bad `user_id`")
        text = one("text", required=False) or ""
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(400, "`text` is too long")
        return cls(user_id, text, one("response_url", required=False))


async def capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(413, "request body too large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BadRequest(413, "request body too large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(400, "client went away") from None
    return b"".join(chunks)


def verify_signature(secret: bytes, body: bytes, timestamp: str | None, signature: str | None,
                     now: float | None = None) -> None:
    """Slack's v0 signature over the raw bytes; raises BadRequest(401) for anything off."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise BadRequest(401, "missing or malformed signature headers")
    if abs((now if now is not None else time.time()) - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise BadRequest(401, "stale request")
    expected = "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise BadRequest(401, "bad signature")


def decode_form(body: bytes) -> dict[str, list[str]]:
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=64,
                        errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "the body is not a UTF-8 form") from None


def url_verification(body: bytes) -> Response | None:
    """Slack's Events API handshake (`{"type": "url_verification", "challenge": ...}`)."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(400, "the body is not JSON") from None
    if isinstance(payload, dict) and payload.get("type") == "url_verification" and isinstance(payload.get("challenge"), str):
        return JSONResponse({"challenge": payload["challenge"][:200]})
    return Response(status_code=200)  # events the bot does not subscribe to: accepted and ignored


def slack_routes(runtime: "Runtime") -> list[BaseRoute]:
    settings = runtime.settings
    if settings.slack_signing_secret is None:
        return []
    secret = settings.slack_signing_secret.reveal().encode()
    intake = SlackIntake.for_runtime(runtime)
    responder = SlackResponder(settings.slack_response_origins)

    async def events(request: Request) -> Response:
        try:
            body = await capped_body(request)
            verify_signature(secret, body, request.headers.get("x-slack-request-timestamp"),
                             request.headers.get("x-slack-signature"))
            handshake = url_verification(body)
            if handshake is not None:
                return handshake
            command = SlashCommand.from_form(decode_form(body))
            if command.response_url is not None and not responder.allowed(command.response_url):
                raise BadRequest(400, "response_url is not a Slack URL")
        except BadRequest as problem:
            return JSONResponse({"error": str(problem)}, status_code=problem.status)
        try:
            text = await run_in_threadpool(intake.accept, command.user_id, command.text, command.response_url,
                                           request.headers.get("x-slack-signature", ""))
        except Exception:  # noqa: BLE001 - a signed request is answered, whatever broke behind it
            log.exception("taking a Slack command failed")
            text = "Sorry, I cannot take commands right now; try again in a minute."
        return JSONResponse({"response_type": "ephemeral", "text": text})

    return [Route("/slack/events", events, methods=["POST"])]


def respond_to(response_url: str, text: str) -> None:
    """Kept for events queued by older versions (`kind: command`); Slack's own hosts only."""
    SlackResponder(SLACK_ORIGINS).respond(response_url, text)


__all__ = ["slack_routes", "respond_to", "SlashCommand", "verify_signature"]
