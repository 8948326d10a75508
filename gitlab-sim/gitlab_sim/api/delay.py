"""A switch that makes the simulator slow: every REST answer waits `backend.response_delay` seconds.

For tests of what must not wait on GitLab (Slack's 3-second acknowledgement). The wait is
asynchronous, so the simulator keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from ..backend import Backend


class ResponseDelayMiddleware:
    def __init__(self, app: ASGIApp, backend: Backend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        delay = self.backend.response_delay
        if scope["type"] == "http" and delay > 0 and str(scope.get("path", "")).startswith("/api/"):
            await asyncio.sleep(delay)
        await self.app(scope, receive, send)
