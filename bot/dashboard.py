"""The dashboard: a page with no data in it, a small script that signs in through the API and
renders what the API returns, and the server-sent events stream that keeps it live.

No data is ever part of the page itself, so nothing is shown before sign-in; the script keeps
its tokens in memory only (a reload signs out).
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any, AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from merge_assist.bot.admin_http import ApiError, authenticate
from merge_assist.bot.admin_lanes import lanes_snapshot
from merge_assist.bot.admin_openapi import EVENTS_PATH
from merge_assist.bot.admin_policy import ANY_PROJECT, Permission

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
ASSETS = {"/": ("dashboard.html", "text/html; charset=utf-8"),
          "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


def _asset(name: str) -> bytes:
    return resources.files("merge_assist.bot").joinpath("dashboard_assets", name).read_bytes()


async def asset(request: Request) -> Response:
    name, media_type = ASSETS[request.url.path]
    return Response(_asset(name), media_type=media_type, headers=SECURITY_HEADERS)


def _stable(snapshot: dict[str, Any]) -> str:
    """The snapshot without what changes every second, to decide whether to send it."""
    copy = json.loads(json.dumps(snapshot))
    for lane in copy["lanes"]:
        for entry in lane["entries"]:
            entry.pop("waiting_seconds", None)
    return json.dumps(copy, sort_keys=True)


async def events(request: Request) -> Response:
    """`event: lanes` with the lanes snapshot whenever it changes. The token is re-checked on every
    tick: signing out or deactivation ends the stream."""
    runtime, tokens, details = request.app.state.runtime, request.app.state.tokens, request.app.state.details
    header = request.headers.get("authorization", "")
    try:
        principal = await run_in_threadpool(authenticate, runtime, tokens, header)
    except ApiError as exc:
        return exc.response()
    if not principal.allows(Permission.READ, ANY_PROJECT):
        return ApiError(403, "your roles do not allow read on any project").response()

    async def stream() -> AsyncIterator[str]:
        last, quiet = "", 0.0
        while not await request.is_disconnected():
            try:
                current = await run_in_threadpool(authenticate, runtime, tokens, header)
            except ApiError:
                yield "event: signed-out\ndata: {}\n\n"
                return
            snapshot = await run_in_threadpool(lanes_snapshot, runtime, details,
                                               current.projects_with(Permission.READ), current.permissions_on)
            stable = _stable(snapshot)
            if stable != last:
                last, quiet = stable, 0.0
                yield f"event: lanes\ndata: {json.dumps(snapshot)}\n\n"
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def dashboard_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route(path, asset) for path in ASSETS]
    return [*routes, Route(EVENTS_PATH, events)]
