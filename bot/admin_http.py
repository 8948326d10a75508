"""The HTTP frame of every admin API route: bounded body, authentication, the permission check,
and the handler run in the thread pool (bcrypt, the database, Redis and GitLab never block the
event loop). Handlers receive a `Call` and return JSON data or raise `ApiError`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from merge_assist.bot.admin_lanes import DetailsCache
from merge_assist.bot.admin_policy import Grant, Permission, Principal
from merge_assist.bot.admin_tokens import ACCESS, TokenRefused, TokenService
from merge_assist.rules.model import Actor

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.admin")
MAX_BODY_BYTES = 64 * 1024
MAX_ID = 2**63 - 1
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra
        self.headers: dict[str, str] = {}

    def response(self) -> Response:
        return JSONResponse({"error": self.message, **self.extra}, status_code=self.status, headers=self.headers)


def unauthorized(message: str) -> ApiError:
    error = ApiError(401, message)
    error.headers["WWW-Authenticate"] = "Bearer"
    return error


@dataclass(frozen=True)
class Body:
    """The JSON object a route accepts: field name → JSON type(s), and the fields it requires."""

    fields: Mapping[str, type | tuple[type, ...]]
    required: tuple[str, ...] = ()


NO_BODY = Body({})


@dataclass
class Call:
    """One admin request as the handler sees it."""

    runtime: "Runtime"
    tokens: TokenService
    details: DetailsCache
    method: str
    principal: Principal | None
    params: dict[str, Any]
    query: Mapping[str, str]
    body: dict[str, Any]
    accepts: Body
    client: str
    project_id: int | None = None

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route without a permission used the principal"
        return self.principal

    @property
    def actor(self) -> Actor:
        return Actor(self.user.gitlab_user_id, self.user.username, "api")

    def field(self, name: str) -> Any:
        """A body field, checked against the route's `Body` (a 400 names what is wrong)."""
        kind = self.accepts.fields[name]
        if name not in self.body or self.body[name] is None:
            if name in self.accepts.required:
                raise ApiError(400, f"{name}: required")
            return None
        value = self.body[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            raise ApiError(400, f"{name}: expected {_type_name(kind)}")
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_ID:
            raise ApiError(400, f"{name}: out of range")
        return value

    def audit(self, action: str, target: str, outcome: str = "ok", detail: str = "") -> None:
        self.runtime.store.audit.record(self.actor, action, target, outcome, detail)


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in _tuple(kind))


Handler = Callable[[Call], Any]
Scope = Callable[[Call], "int | None"]


def no_project(_call: Call) -> int | None:
    return None


def path_project(call: Call) -> int | None:
    return int(call.params["project_id"])


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    handler: Handler
    permission: Permission | None  # None: no token needed (sign-in, refresh, the API description)
    summary: str
    scope: Scope = no_project
    body: Body = NO_BODY
    query: tuple[str, ...] = ()
    status: int = 200


def authenticate(runtime: "Runtime", tokens: TokenService, header: str) -> Principal:
    if not header.lower().startswith("bearer "):
        raise unauthorized("a bearer access token is required")
    try:
        claims = tokens.decode(header[7:].strip(), ACCESS)
    except TokenRefused as exc:
        raise unauthorized(str(exc)) from None
    user = runtime.store.sessions.live_user(claims.session_id, claims.user_id)
    if user is None:
        raise unauthorized("the session has ended or the account is deactivated; sign in again")
    grants = tuple(Grant(g.role, g.project_id) for g in runtime.store.users.grants(user_id=user.user_id))
    return Principal(user.user_id, user.username, user.gitlab_user_id, user.session_id, grants)


async def read_body(request: Request) -> dict[str, Any]:
    """The JSON object sent, read with a size cap before parsing."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def _check_ids(params: dict[str, Any]) -> None:
    for name, value in params.items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise ApiError(400, f"{name}: out of range")


def _principal(route: ApiRoute, request: Request) -> Principal | None:
    if route.permission is None:
        return None
    return authenticate(request.app.state.runtime, request.app.state.tokens, request.headers.get("authorization", ""))


def _run(route: ApiRoute, request: Request, principal: Principal | None, body: dict[str, Any]) -> Response:
    _check_ids(request.path_params)
    unknown = sorted(set(body) - set(route.body.fields))
    if unknown:
        raise ApiError(400, f"unknown fields: {', '.join(unknown)[:200]}; this route accepts: "
                            f"{', '.join(route.body.fields) or 'no body'}")
    state = request.app.state
    call = Call(state.runtime, state.tokens, state.details, request.method, principal, dict(request.path_params),
                request.query_params, body, route.body, request.client.host if request.client else "unknown")
    if principal is not None and route.permission is not None:
        call.project_id = route.scope(call)
        if not principal.allows(route.permission, call.project_id):
            where = f"project {call.project_id}" if call.project_id is not None else "all projects"
            if route.method != "GET":
                call.audit(f"api:{route.handler.__name__}", str(call.project_id or "-"), "refused",
                           f"needs {route.permission.value} on {where}")
            raise ApiError(403, f"your roles do not allow {route.permission.value} on {where}")
    result = route.handler(call)
    if isinstance(result, Response):
        return result
    return JSONResponse(result, status_code=route.status)


def endpoint(route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            # The token is checked before the body is read or parsed.
            principal = await run_in_threadpool(_principal, route, request)
            body = await read_body(request) if request.method in BODY_METHODS else {}
            return await run_in_threadpool(_run, route, request, principal, body)
        except ApiError as exc:
            return exc.response()

    handle.__name__ = route.handler.__name__
    return handle
