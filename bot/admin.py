"""Admin faces: a JSON API behind JWT (`/api/...`) and a read-only queue dashboard at `/`."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from merge_assist.rules.config import PROJECT_SOURCE, ConfigError, validate_layer
from merge_assist.rules.model import Actor, LaneKey

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

TOKEN_SECONDS = 3600
ALGORITHM = "HS256"


def _runtime(request: Request) -> "Runtime":
    return request.app.state.runtime  # type: ignore[no-any-return]


def _secret(request: Request) -> str:
    return _runtime(request).settings.jwt_secret.reveal()


def _claims(request: Request) -> dict[str, Any] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        return jwt.decode(header[7:], _secret(request), algorithms=[ALGORITHM])  # type: ignore[no-any-return]
    except jwt.PyJWTError:
        return None


def _unauthorized() -> Response:
    return JSONResponse({"error": "a valid bearer token is required"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


async def issue_token(request: Request) -> Response:
    try:
        data = await request.json()
        username, password = str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "send JSON with username and password"}, status_code=400)
    store = _runtime(request).store
    user = store.users.verify_password(username, password)
    if user is None:
        return JSONResponse({"error": "wrong username or password"}, status_code=401)
    roles = sorted(store.users.roles_for(project_id=-1, user_id=user.id))
    token = jwt.encode({"sub": user.username, "uid": user.id, "roles": roles, "exp": int(time.time()) + TOKEN_SECONDS},
                       _secret(request), algorithm=ALGORITHM)
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": TOKEN_SECONDS})


def _entries_json(runtime: "Runtime", active_only: bool) -> list[dict[str, Any]]:
    return [{
        "id": e.id, "project_id": e.project_id, "mr_iid": e.mr_iid, "target_branch": e.target_branch,
        "priority": e.priority.label, "state": e.state.value, "reason": e.reason, "requested_by": e.requested_by,
        "attempts": e.attempts, "tested_sha": e.tested_sha, "enqueued_at": e.enqueued_at.isoformat(),
        "updated_at": e.updated_at.isoformat(),
    } for e in runtime.store.queue.all_entries(active_only=active_only)]


async def api_queue(request: Request) -> Response:
    if _claims(request) is None:
        return _unauthorized()
    active_only = request.query_params.get("active", "false").lower() == "true"
    return JSONResponse({"entries": _entries_json(_runtime(request), active_only)})


async def api_audit(request: Request) -> Response:
    claims = _claims(request)
    if claims is None:
        return _unauthorized()
    target = request.query_params.get("target")
    entries = _runtime(request).store.audit.entries(target=target)
    return JSONResponse({"entries": [{
        "id": a.id, "at": a.at.isoformat(), "actor": a.actor, "channel": a.channel, "action": a.action,
        "target": a.target, "outcome": a.outcome, "detail": a.detail} for a in entries]})


async def api_pause(request: Request) -> Response:
    """POST pauses, DELETE resumes a lane (`/api/lanes/<id>/<branch>/pause`) or a whole project
    (`/api/projects/<id>/pause`). Queued MRs stay queued while paused."""
    claims = _claims(request)
    if claims is None:
        return _unauthorized()
    if "admin" not in claims.get("roles", ()):
        return JSONResponse({"error": "only admins may pause lanes"}, status_code=403)
    project_id = int(request.path_params["project_id"])
    branch = request.path_params.get("branch")
    paused = request.method == "POST"
    runtime = _runtime(request)
    if branch is None:
        try:
            runtime.store.projects.set_paused(project_id, paused)
        except KeyError:
            return JSONResponse({"error": f"project {project_id} is not managed"}, status_code=404)
        lanes = [lane for lane in runtime.store.queue.waiting_lanes() if lane.project_id == project_id]
    else:
        runtime.store.queue.set_lane_paused(LaneKey(project_id, branch), paused)
        lanes = [LaneKey(project_id, branch)]
    target = f"{project_id}:{branch}" if branch else str(project_id)
    runtime.store.audit.record(Actor(None, str(claims["sub"]), "api"), "pause" if paused else "resume", target, "ok")
    if not paused:
        for lane in lanes:
            runtime.queue.publish({"kind": "wake", "project_id": lane.project_id, "target_branch": lane.target_branch})
    return JSONResponse({"project_id": project_id, "target_branch": branch, "paused": paused})


async def api_project(request: Request) -> Response:
    """Register a project (optionally with its own webhook secret) and set its rule settings."""
    claims = _claims(request)
    if claims is None:
        return _unauthorized()
    if "admin" not in claims.get("roles", ()):
        return JSONResponse({"error": "only admins may change projects"}, status_code=403)
    try:
        data = await request.json()
        path = str(data["path"])
        settings = data.get("settings")
        secret = data.get("webhook_secret")
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "send JSON with path, and optionally settings and webhook_secret"},
                            status_code=400)
    runtime = _runtime(request)
    if settings is not None:
        try:
            validate_layer(PROJECT_SOURCE, settings, runtime.engine.describe_rules())
        except ConfigError as exc:
            return JSONResponse({"error": str(exc), "key": exc.key, "reason": exc.reason}, status_code=400)
    project_id = int(request.path_params["project_id"])
    view = runtime.store.projects.register(project_id, path, webhook_secret=secret, settings=settings)
    runtime.webhook_auth.refresh()
    runtime.store.audit.record(Actor(None, str(claims["sub"]), "api"), "project", str(project_id), "ok",
                               f"settings {'changed' if settings is not None else 'kept'}"
                               f"{', own webhook secret set' if secret else ''}")
    return JSONResponse({"id": view.id, "path": view.path, "has_own_secret": view.has_own_secret,
                         "settings": view.settings})


async def dashboard(request: Request) -> Response:
    runtime = _runtime(request)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(e[k]))}</td>" for k in (
            "project_id", "mr_iid", "target_branch", "priority", "state", "reason", "requested_by", "updated_at"))
        + "</tr>"
        for e in _entries_json(runtime, active_only=False)[:200])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Merge Assist</title>
<meta http-equiv="refresh" content="5"><style>body{{font-family:sans-serif;margin:2em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head>
<body><h1>Merge Assist queue</h1><table><tr><th>project</th><th>MR</th><th>target</th><th>priority</th>
<th>state</th><th>reason</th><th>requested by</th><th>updated</th></tr>{rows}</table></body></html>"""
    return HTMLResponse(page)


def admin_routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard),
        Route("/api/token", issue_token, methods=["POST"]),
        Route("/api/queue", api_queue),
        Route("/api/audit", api_audit),
        Route("/api/lanes/{project_id:int}/{branch:path}/pause", api_pause, methods=["POST", "DELETE"]),
        Route("/api/projects/{project_id:int}", api_project, methods=["PUT"]),
        Route("/api/projects/{project_id:int}/pause", api_pause, methods=["POST", "DELETE"]),
    ]
