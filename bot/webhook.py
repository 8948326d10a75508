"""`POST /webhooks/gitlab`: authenticate, deduplicate key, enqueue, answer within milliseconds.

Nothing here calls GitLab or the database on the request path (project secrets are cached).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from merge_assist.adapters.queues import QueueUnavailable
from merge_assist.bot.dispatch import HANDLED_HOOKS, JOB_HOOK, PUSH_HOOK, is_relevant
from merge_assist.rules.events import event_scope, log_event
from merge_assist.rules.metrics import METRICS

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.webhook")


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
                        attributes.get("action")], default=str)
    return "hash:" + hashlib.sha256(basis.encode()).hexdigest()


def event_id_for(key: str) -> str:
    """The id that follows this delivery through the logs: its dedupe key, shortened."""
    kind, _, value = key.partition(":")
    return f"{kind}:{value[:16]}" if kind == "hash" else key


def _mr_iid(event: str, body: dict[str, Any]) -> int | None:
    mr = body.get("merge_request") or (body.get("object_attributes") if event == "Merge Request Hook" else None) or {}
    return mr.get("iid") if isinstance(mr.get("iid"), int) else None


def _project_id(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    value = body.get("project_id") or (body.get("project") or {}).get("id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def gitlab_webhook(request: Request) -> Response:
    request.state.received = time.perf_counter()
    runtime: Runtime = request.app.state.runtime
    token = request.headers.get("x-gitlab-token")
    if not token:
        return _reply(request, 401, "unauthorized", error="missing X-Gitlab-Token")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not runtime.webhook_auth.accepts(token, _project_id(body)):
        return _reply(request, 401, "unauthorized", error="wrong X-Gitlab-Token")
    if not isinstance(body, dict):
        return _reply(request, 400, "malformed", error="the body is not a JSON object")
    event = request.headers.get("x-gitlab-event", "")
    if event not in HANDLED_HOOKS:
        return _reply(request, 200, "ignored", reason=f"event {event!r} is not used")
    required = ("object_kind",) if event in (JOB_HOOK, PUSH_HOOK) else ("object_kind", "object_attributes")
    missing = [name for name in required if name not in body]
    if missing or _project_id(body) is None:
        return _reply(request, 400, "malformed", error=f"missing field(s): {', '.join(missing) or 'project id'}")
    if not is_relevant(event, body):
        return _reply(request, 200, "ignored", reason="nothing for the queue in this event")
    key = delivery_key(request.headers, event, body)
    message = {"kind": "gitlab", "event": event, "key": key, "event_id": event_id_for(key), "body": body}
    with event_scope(message["event_id"]):
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
    log_event("webhook", kind=event, outcome="queued", project=_project_id(body), mr=_mr_iid(event, body))
    return _reply(request, 200, "queued")


def webhook_routes() -> list[BaseRoute]:
    return [Route("/webhooks/gitlab", gitlab_webhook, methods=["POST"])]
