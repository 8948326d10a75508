"""Admin API over the queue and projects: lanes, priority, cancel, pause, freeze, project
settings, the audit log and the installed rules and commands.

Priority and cancel go through the same service methods as the MR commands
(`rules.service.MergeRequestServices`), so the lane sees one kind of change whatever its source.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from merge_assist.bot.admin_http import ApiError, ApiRoute, Body, Call, path_project
from merge_assist.bot.admin_lanes import lanes_snapshot
from merge_assist.bot.admin_policy import ANY_PROJECT, Permission
from merge_assist.rules.commands import CommandRefused
from merge_assist.rules.config import PROJECT_SOURCE, ConfigError, validate_layer
from merge_assist.rules.errors import GitLabError
from merge_assist.rules.model import LaneKey, Priority, QueueEntry
from merge_assist.rules.service import MergeRequestServices
from merge_assist.storage.audit_query import AuditFilter, audit_page
from merge_assist.storage.projects import ProjectView

V1 = "/api/v1"
AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX = 50, 200


def any_project(_call: Call) -> int:
    return ANY_PROJECT


def entry_project(call: Call) -> int:
    return _entry(call).project_id


def _entry(call: Call) -> QueueEntry:
    entry = call.runtime.store.queue.get_entry(int(call.params["entry_id"]))
    if entry is None:
        raise ApiError(404, f"no queue entry with id {call.params['entry_id']}")
    return entry


def list_lanes(call: Call) -> dict[str, Any]:
    return lanes_snapshot(call.runtime, call.details, call.user.projects_with(Permission.READ),
                          call.user.permissions_on)


def _services(call: Call, entry: QueueEntry) -> MergeRequestServices:
    runtime = call.runtime
    if runtime.commands is None or runtime.gitlab is None:
        raise ApiError(503, "GitLab is not configured: queue changes need it")
    try:
        mr = runtime.gitlab.get_merge_request(entry.project_id, entry.mr_iid)
    except GitLabError as exc:
        raise ApiError(502, f"GitLab did not answer for !{entry.mr_iid}: {type(exc).__name__}") from None
    roles = frozenset(g.role for g in call.user.grants if g.project_id in (None, entry.project_id))
    return MergeRequestServices(runtime.commands, call.actor, mr, None, roles)


def set_priority(call: Call) -> dict[str, Any]:
    try:
        priority = Priority.parse(call.field("priority"))
    except ValueError as exc:
        raise ApiError(400, f"priority: {exc}") from None
    entry = _entry(call)
    services = _services(call, entry)
    try:
        text = services.set_priority(priority)  # audits the change itself
    except CommandRefused as exc:
        raise ApiError(409, str(exc)) from None
    _wake(call, [changed.lane for changed in services.wakes])
    return {"entry_id": entry.id, "priority": priority.label, "message": text}


def cancel_entry(call: Call) -> dict[str, Any]:
    entry = _entry(call)
    services = _services(call, entry)
    try:
        text = services.cancel()
    except CommandRefused as exc:
        call.audit("cancel", f"{entry.project_id}!{entry.mr_iid}", "refused", str(exc))
        raise ApiError(409, str(exc)) from None
    call.audit("cancel", f"{entry.project_id}!{entry.mr_iid}", detail=text)
    _wake(call, [changed.lane for changed in services.wakes])
    return {"entry_id": entry.id, "message": text}


def _wake(call: Call, lanes: list[LaneKey]) -> None:
    for lane in lanes:
        call.runtime.queue.publish({"kind": "wake", "project_id": lane.project_id, "target_branch": lane.target_branch})


def pause_lane(call: Call) -> dict[str, Any]:
    paused = call.method == "POST"
    lane = LaneKey(int(call.params["project_id"]), str(call.params["branch"]))
    call.runtime.store.queue.set_lane_paused(lane, paused)
    call.audit("pause" if paused else "resume", f"{lane.project_id}:{lane.target_branch}")
    if not paused:
        _wake(call, [lane])
    return {"project_id": lane.project_id, "target_branch": lane.target_branch, "paused": paused}


def pause_project(call: Call) -> dict[str, Any]:
    paused, project_id = call.method == "POST", int(call.params["project_id"])
    try:
        call.runtime.store.projects.set_paused(project_id, paused)
    except KeyError:
        raise ApiError(404, f"project {project_id} is not managed") from None
    call.audit("pause" if paused else "resume", str(project_id))
    if not paused:
        _wake(call, [lane for lane in call.runtime.store.queue.waiting_lanes() if lane.project_id == project_id])
    return {"project_id": project_id, "target_branch": None, "paused": paused}


def project_json(view: ProjectView) -> dict[str, Any]:
    return {"id": view.id, "path": view.path, "has_own_secret": view.has_own_secret, "settings": view.settings,
            "paused": view.paused}


def list_projects(call: Call) -> dict[str, Any]:
    visible = call.user.projects_with(Permission.READ)
    return {"projects": [project_json(p) for p in call.runtime.store.projects.all_projects()
                         if visible is None or p.id in visible]}


def get_project(call: Call) -> dict[str, Any]:
    view = call.runtime.store.projects.get(int(call.params["project_id"]))
    if view is None:
        raise ApiError(404, f"project {call.params['project_id']} is not managed")
    return project_json(view)


def _validated(call: Call, settings: dict[str, Any]) -> None:
    try:
        validate_layer(PROJECT_SOURCE, settings, call.runtime.engine.describe_rules())
    except ConfigError as exc:
        raise ApiError(400, str(exc), key=exc.key, reason=exc.reason) from None


def put_project(call: Call) -> dict[str, Any]:
    """Register a project (optionally with its own webhook secret) and set its rule settings."""
    path = call.field("path")
    settings = call.field("settings")
    secret = call.field("webhook_secret")
    if settings is not None:
        _validated(call, settings)
    project_id = int(call.params["project_id"])
    view = call.runtime.store.projects.register(project_id, path, webhook_secret=secret, settings=settings)
    call.runtime.webhook_auth.refresh()
    call.audit("project", str(project_id), detail=f"settings {'changed' if settings is not None else 'kept'}"
                                                  f"{', own webhook secret set' if secret else ''}")
    return project_json(view)


def set_freeze(call: Call) -> dict[str, Any]:
    """PUT sets the project's freeze windows (the `freeze` rule's options); DELETE removes them."""
    project_id = int(call.params["project_id"])
    view = call.runtime.store.projects.get(project_id)
    if view is None:
        raise ApiError(404, f"project {project_id} is not managed")
    settings = json.loads(json.dumps(view.settings))
    rules = settings.setdefault("rules", {})
    if call.method == "PUT":
        freeze = {"windows": call.field("windows")}
        zone = call.field("timezone")
        if zone is not None:
            freeze["timezone"] = zone
        rules["freeze"] = {**rules.get("freeze", {}), **freeze}
        _validated(call, settings)
    else:
        rules.pop("freeze", None)
    view = call.runtime.store.projects.register(project_id, view.path, settings=settings)
    call.audit("freeze" if call.method == "PUT" else "unfreeze", str(project_id),
               detail=json.dumps(rules.get("freeze", {}))[:500])
    return project_json(view)


def _time(call: Call, name: str) -> datetime | None:
    raw = call.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name}: expected an ISO 8601 time, e.g. 2026-11-30T14:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _int_query(call: Call, name: str, default: int | None, highest: int) -> int | None:
    raw = call.query.get(name)
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 18 or not 1 <= int(raw) <= highest:
        raise ApiError(400, f"{name}: expected a whole number from 1 to {highest}")
    return int(raw)


def list_audit(call: Call) -> dict[str, Any]:
    projects = call.user.projects_with(Permission.READ)
    wanted = _int_query(call, "project", None, 2**63 - 1)
    if wanted is not None:
        projects = frozenset({wanted}) & projects if projects is not None else frozenset({wanted})
    limit = _int_query(call, "limit", AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX) or AUDIT_PAGE_DEFAULT
    filters = AuditFilter(projects=projects, actor=call.query.get("actor") or None,
                          action=call.query.get("action") or None, since=_time(call, "since"),
                          until=_time(call, "until"))
    page, next_id = audit_page(call.runtime.store.db, filters, before_id=_int_query(call, "cursor", None, 2**63 - 1),
                               limit=limit)
    return {"entries": [{"id": a.id, "at": a.at.isoformat(), "actor": a.actor, "channel": a.channel,
                         "action": a.action, "target": a.target, "outcome": a.outcome, "detail": a.detail}
                        for a in page],
            "next_cursor": str(next_id) if next_id is not None else None}


def list_rules(call: Call) -> dict[str, Any]:
    engine = call.runtime.engine
    rules = [{"name": r.name, "summary": r.summary, "defaults": dict(r.defaults), "options": dict(r.option_help)}
             for r in engine.describe_rules()]
    commands = [{"name": s.name, "summary": s.help.summary, "usage": s.help.usage, "who_can_use": s.help.who_can_use,
                 "examples": list(s.help.examples), "mutates": s.mutates} for s in engine.commands().values()]
    plain: dict[str, Any] = json.loads(json.dumps({"rules": rules, "commands": commands}, default=str))
    return plain


LANE = f"{V1}/lanes/{{project_id:int}}/{{branch:path}}/pause"
QUEUE_ROUTES = (
    ApiRoute("GET", f"{V1}/lanes", list_lanes, Permission.READ,
             "Lanes in merge order with reasons and waiting times, and recent merges and failures",
             scope=any_project),
    ApiRoute("POST", f"{V1}/entries/{{entry_id:int}}/priority", set_priority, Permission.PRIORITY,
             "Change a queued MR's priority", scope=entry_project, body=Body({"priority": str}, required=("priority",))),
    ApiRoute("POST", f"{V1}/entries/{{entry_id:int}}/cancel", cancel_entry, Permission.CANCEL,
             "Take an MR out of the queue", scope=entry_project),
    ApiRoute("POST", LANE, pause_lane, Permission.MANAGE_PROJECT, "Pause a lane", scope=path_project),
    ApiRoute("DELETE", LANE, pause_lane, Permission.MANAGE_PROJECT, "Resume a lane", scope=path_project),
    ApiRoute("POST", f"{V1}/projects/{{project_id:int}}/pause", pause_project, Permission.MANAGE_PROJECT,
             "Pause every lane of a project", scope=path_project),
    ApiRoute("DELETE", f"{V1}/projects/{{project_id:int}}/pause", pause_project, Permission.MANAGE_PROJECT,
             "Resume a project", scope=path_project),
    ApiRoute("PUT", f"{V1}/projects/{{project_id:int}}/freeze", set_freeze, Permission.MANAGE_PROJECT,
             "Set freeze windows", scope=path_project, body=Body({"windows": list, "timezone": str}, required=("windows",))),
    ApiRoute("DELETE", f"{V1}/projects/{{project_id:int}}/freeze", set_freeze, Permission.MANAGE_PROJECT,
             "Remove freeze windows", scope=path_project),
    ApiRoute("GET", f"{V1}/projects", list_projects, Permission.READ, "Managed projects", scope=any_project),
    ApiRoute("GET", f"{V1}/projects/{{project_id:int}}", get_project, Permission.READ, "One project",
             scope=path_project),
    ApiRoute("PUT", f"{V1}/projects/{{project_id:int}}", put_project, Permission.MANAGE_PROJECT,
             "Register a project, its own webhook secret and settings (validated like .merge-assist.yml)",
             scope=path_project, body=Body({"path": str, "settings": dict, "webhook_secret": str}, required=("path",))),
    ApiRoute("GET", f"{V1}/audit", list_audit, Permission.READ, "The audit log, newest first", scope=any_project,
             query=("project", "actor", "action", "since", "until", "cursor", "limit")),
    ApiRoute("GET", f"{V1}/rules", list_rules, Permission.READ, "Installed rules and commands with their help",
             scope=any_project),
)
