"""`POST /webhooks/gitlab`: authenticate, deduplicate key, enqueue, answer within milliseconds.

Nothing here calls GitLab or the database on the request path (project secrets are cached).
Order matters for hostile input: the token is checked before the body is read, the body is
capped before it is parsed, and the parsed payload is validated (bot.payloads) before it is
queued, so the worker never sees a malformed event. Answers: 401, 413, 400, 200 (queued or
ignored) or 503 (queue down: GitLab delivers again); never 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from merge_assist.adapters.queues import QueueUnavailable
from merge_assist.bot.dispatch import HANDLED_HOOKS, is_relevant
from merge_assist.bot.payloads import PayloadError, project_id_hint, validate_hook
from merge_assist.rules.events import event_scope, log_event
from merge_assist.rules.metrics import METRICS

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.webhook")
MAX_BODY_BYTES = 5 * 1024 * 1024
"""GitLab's largest payloads (a push listing 20 commits, an MR with a long description) are far smaller."""
PARSE_IN_THREAD_BYTES = 256 * 1024
"""Larger bodies are parsed off the event loop, so /healthz is not kept waiting."""


def _metric_kind(event: str) -> str:
    """The event header as a label; anything else is "other" (the header is not authenticated)."""
    return event if event in HANDLED_HOOKS else "other"


def _reply(request: Request, status: int, outcome: str, **extra: Any) -> Response:
    METRICS.webhook_delivery(_metric_kind(request.headers.get("x-gitlab-event", "")), outcome)
    METRICS.webhook_acknowledged(time.perf_counter() - request.state.received)
    return JSONResponse({"status": outcome, **extra}, status_code=status)


def delivery_key(headers: Any, event: str, body: dict[str, Any]) -> str:
    """GitLab's Idempotency-Key; else a hash of the event kind, object id and update time."""
    key = headers.get("idempotency-key")
    if key:
        return f"idem:{key}"
    attributes = body.get("object_attributes") or {}
    basis = json.dumps([event, body.get("project_id") or (body.get("project") or {}).get("id"),
                        attributes.get("id"), attributes.get("updated_at"), attributes.get("status"),
                        attributes.get("action"), body.get("build_id"), body.get("after")], default=str)
    return "hash:" + hashlib.sha256(basis.encode()).hexdigest()


def event_id_for(key: str) -> str:
    """The id that follows this delivery through the logs: its dedupe key, shortened."""
    kind, _, value = key.partition(":")
    return f"{kind}:{value[:16]}" if kind == "hash" else key


def _mr_iid(event: str, body: dict[str, Any]) -> int | None:
    mr = body.get("merge_request") or (body.get("object_attributes") if event == "Merge Request Hook" else None) or {}
    return mr.get("iid") if isinstance(mr.get("iid"), int) else None


class BodyTooLarge(Exception):
    pass


async def _read_capped(request: Request) -> bytes:
    """The body, refused unread past MAX_BODY_BYTES (by Content-Length, else while streaming)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: ValueError for invalid UTF-8 or JSON, NaN/Infinity, huge numbers or deep nesting."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deep") from None


async def gitlab_webhook(request: Request) -> Response:
    request.state.received = time.perf_counter()
    runtime: Runtime = request.app.state.runtime
    token = request.headers.get("x-gitlab-token")
    if not token:
        return _reply(request, 401, "unauthorized", error="missing X-Gitlab-Token")
    if not runtime.webhook_auth.may_accept(token):
        return _reply(request, 401, "unauthorized", error="wrong X-Gitlab-Token")
    try:
        raw = await _read_capped(request)
    except BodyTooLarge:
        return _reply(request, 413, "too_large", error=f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = parse_json(raw) if len(raw) < PARSE_IN_THREAD_BYTES else await run_in_threadpool(parse_json, raw)
    except ValueError as exc:
        return _reply(request, 400, "malformed", error=f"the body is not valid JSON ({exc})"[:200])
    if not runtime.webhook_auth.accepts(token, project_id_hint(body)):
        return _reply(request, 401, "unauthorized", error="wrong X-Gitlab-Token")
    if not isinstance(body, dict):
        return _reply(request, 400, "malformed", error="the body is not a JSON object")
    event = request.headers.get("x-gitlab-event", "")
    if event not in HANDLED_HOOKS:
        return _reply(request, 200, "ignored", reason=f"event {event[:100]!r} is not used")
    try:
        hook = dict(validate_hook(event, body))
    except PayloadError as exc:
        return _reply(request, 400, "malformed", error=str(exc))
    if not is_relevant(event, hook):
        return _reply(request, 200, "ignored", reason="nothing for the queue in this event")
    key = delivery_key(request.headers, event, hook)
    event_id = event_id_for(key)
    message: dict[str, Any] = {"kind": "gitlab", "event": event, "key": key, "event_id": event_id, "body": hook}
    with event_scope(event_id):
        return await _enqueue(request, runtime, event, message)


async def _enqueue(request: Request, runtime: "Runtime", event: str, message: dict[str, Any]) -> Response:
    body = message["body"]
    try:
        if runtime.queue.publish_waits_on_network:  # must not block the event loop
            await run_in_threadpool(runtime.queue.publish, message)
        else:
            runtime.queue.publish(message)
    except QueueUnavailable as exc:
        log.error("cannot queue a %s delivery: %s", event, exc)
        # 503 makes GitLab deliver it again later instead of losing it.
        return _reply(request, 503, "unavailable", error="queue unavailable; retry later")
    log_event("webhook", kind=event, outcome="queued", project=project_id_hint(body), mr=_mr_iid(event, body))
    return _reply(request, 200, "queued")


def webhook_routes() -> list[BaseRoute]:
    return [Route("/webhooks/gitlab", gitlab_webhook, methods=["POST"])]
