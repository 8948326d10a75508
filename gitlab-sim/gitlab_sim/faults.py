"""Fault injection for chaos tests: the API answers 5xx, 429 with Retry-After, or stalls.

`Simulator.faults` is switched on and off by a test; while it is on, every `every`-th request
under /api/v4 (git over HTTP is left alone) gets the fault instead of its answer, until
`seconds` have passed or `times` faults were given. Nothing happens to the simulated state: a refused request did nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/v4/"


@dataclass(frozen=True)
class Fault:
    status: int  # 0: stall for `stall_seconds`, then answer normally
    retry_after: int | None = None
    stall_seconds: float = 0.0
    every: int = 1
    until: float = float("inf")
    times: int | None = None


class FaultInjector:
    def __init__(self) -> None:
        self._fault: Fault | None = None
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.injected = 0

    def server_errors(self, status: int = 503, *, seconds: float = float("inf"), every: int = 1,
                      times: int | None = None) -> None:
        self._set(Fault(status, every=every, until=time.monotonic() + seconds, times=times))

    def rate_limit(self, retry_after: int = 1, *, seconds: float = float("inf"), every: int = 1,
                   times: int | None = None) -> None:
        self._set(Fault(429, retry_after=retry_after, every=every, until=time.monotonic() + seconds, times=times))

    def stall(self, stall_seconds: float, *, seconds: float = float("inf"), every: int = 1,
              times: int | None = None) -> None:
        self._set(Fault(0, stall_seconds=stall_seconds, every=every, until=time.monotonic() + seconds, times=times))

    def clear(self) -> None:
        self._set(None)

    def _set(self, fault: Fault | None) -> None:
        with self._lock:
            self._fault = fault
            self._counter = itertools.count()
            self.injected = 0

    def next_fault(self) -> Fault | None:
        """The fault for the request arriving now, if any (and counts it)."""
        with self._lock:
            fault = self._fault
            if fault is None:
                return None
            if time.monotonic() >= fault.until:
                self._fault = None
                return None
            if next(self._counter) % fault.every:
                return None
            self.injected += 1
            if fault.times is not None and self.injected >= fault.times:
                self._fault = None  # that was the last one
            return fault


class FaultMiddleware:
    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = None
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            fault = self.faults.next_fault()
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.status == 0:
            await asyncio.sleep(fault.stall_seconds)
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json")]
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        body = json.dumps({"message": f"{fault.status} injected fault"}).encode()
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
