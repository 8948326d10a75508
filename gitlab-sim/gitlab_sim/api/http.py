"""Plumbing shared by every REST route: auth, parameters, pagination, errors, request log.

Handlers are plain synchronous functions ``(ApiContext) -> result`` run in a worker
thread (they take the state lock and call git). ``endpoint`` turns one into a
Starlette endpoint; ``SimMiddleware`` rewrites ``/projects/group%2Fproject/...`` to
the numeric id (the router only sees decoded paths) and logs every request.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..backend import Backend
from ..errors import ApiError, not_found
from ..mergeability import effective_access
from ..state import MergeRequest, Project, RequestRecord, State, User

PROJECTS_PREFIX = "/api/v4/projects/"
T = TypeVar("T")


@dataclass
class Reply:
    """A handler result that needs a status code or headers other than 200 JSON."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ApiContext:
    backend: Backend
    user: User
    params: dict[str, Any]
    path: dict[str, Any]
    url: str

    @property
    def state(self) -> State:
        return self.backend.state

    def project(self) -> Project:
        """The path's project if the token user may see it, else GitLab's 404."""
        project = self.state.projects.get(int(self.path["pid"]))
        if project is None or (not self.user.is_admin and effective_access(self.state, project, self.user) == 0):
            raise not_found("Project")
        return project

    def merge_request(self) -> MergeRequest:
        mr = self.state.merge_request(self.project().id, int(self.path["iid"]))
        if mr is None:
            raise not_found("Merge Request")
        return mr

    def owned(self, mapping: dict[int, T], key: str, belongs: Callable[[T], bool], what: str) -> T:
        """The object whose id is path parameter ``key``, if ``belongs`` accepts it; else 404."""
        item = mapping.get(int(self.path[key]))
        if item is None or not belongs(item):
            raise not_found(what)
        return item

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name, default)
        return None if value is None else str(value)

    def required(self, name: str) -> str:
        value = self.text(name)
        if value in (None, ""):
            raise ApiError(400, f"400 Bad request - {name} is missing")
        return str(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        return value is True or str(value).lower() in {"true", "1", "yes"}

    def number(self, name: str, default: int) -> int:
        try:
            return int(self.params.get(name, default))
        except (TypeError, ValueError):
            return default


Handler = Callable[[ApiContext], Any]


def token_of(request: Request) -> str | None:
    token = request.headers.get("private-token") or request.query_params.get("private_token")
    auth = request.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token or request.query_params.get("access_token")


async def read_params(request: Request) -> dict[str, Any]:
    """Query string merged with a JSON or form body (GitLab accepts either)."""
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        else:
            params[key] = value
    body = await request.body()
    if body:
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            data = json.loads(body)
            if isinstance(data, dict):
                params.update(data)
        elif "form" in content_type:
            params.update(dict(parse_qsl(body.decode(), keep_blank_values=True)))
    return params


def endpoint(backend: Backend, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        token = token_of(request)
        user = backend.state.user_by_token(token) if token else None
        if user is None:
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        request.scope["sim_user"] = user
        ctx = ApiContext(backend, user, await read_params(request), dict(request.path_params),
                         str(request.url))
        try:
            result = await run_in_threadpool(handler, ctx)
        except ApiError as error:
            return JSONResponse({"message": error.message}, status_code=error.status)
        if isinstance(result, Response):
            return result
        if isinstance(result, Reply):
            return JSONResponse(result.body, status_code=result.status, headers=result.headers)
        return JSONResponse(result)
    return run


def paginate(ctx: ApiContext, items: list[Any], render: Callable[[Any], Any]) -> Reply:
    """GitLab offset pagination with X-* and Link headers."""
    per_page = min(max(ctx.number("per_page", 20), 1), 100)
    page = max(ctx.number("page", 1), 1)
    total = len(items)
    pages = max(math.ceil(total / per_page), 1)
    chunk = items[(page - 1) * per_page: page * per_page]
    base, _, _ = ctx.url.partition("?")
    query = {k: v for k, v in ctx.params.items() if isinstance(v, str | int) and k != "page"}

    def link(target: int, rel: str) -> str:
        return f'<{base}?{urlencode({**query, "page": target, "per_page": per_page})}>; rel="{rel}"'

    links = [link(page + 1, "next")] if page < pages else []
    links += [link(page - 1, "prev")] if page > 1 else []
    links += [link(1, "first"), link(pages, "last")]
    headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(total),
               "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
               "X-Prev-Page": str(page - 1) if page > 1 else "", "Link": ", ".join(links)}
    return Reply([render(item) for item in chunk], headers=headers)


class SimMiddleware:
    """Resolves URL-encoded project paths and records every request in the request log."""

    def __init__(self, app: ASGIApp, backend: Backend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = self._rewrite(scope)
        started_wall, started = self.backend.clock.now(), time.monotonic()

        recorded = False

        async def capture(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start":
                # Record before the client can see the answer, so tests never race the log.
                self._record(scope, message["status"], started_wall, time.monotonic() - started)
                recorded = True
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not recorded:
                self._record(scope, 500, started_wall, time.monotonic() - started)

    def _rewrite(self, scope: Scope) -> Scope:
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?")[0]
        if not raw.startswith(PROJECTS_PREFIX):
            return scope
        ident, _, tail = raw[len(PROJECTS_PREFIX):].partition("/")
        ident = unquote(ident)
        if ident.isdigit():
            return scope
        project = self.backend.state.project_by_path(ident)
        path = f"{PROJECTS_PREFIX}{project.id if project else 0}" + (f"/{unquote(tail)}" if tail else "")
        return {**scope, "path": path}

    def _record(self, scope: Scope, status: int, started: float, duration: float) -> None:
        path: str = scope["path"]
        kind = "api" if path.startswith("/api/") else "git"
        user: User | None = scope.get("sim_user")
        record = RequestRecord(kind, scope["method"], path, scope.get("query_string", b"").decode(),
                               status, user.id if user else None, user.username if user else None,
                               started, duration)
        with self.backend.state.lock:
            self.backend.state.requests.append(record)
