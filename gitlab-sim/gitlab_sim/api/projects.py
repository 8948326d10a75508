"""Routes about users, projects, members, branches, files, commits and hooks."""

from __future__ import annotations

import base64
from typing import Any

from starlette.responses import Response

from .. import serializers as ser
from ..errors import ApiError, forbidden, not_found
from ..mergeability import can_push_to, effective_access
from ..pushes import branch_updated
from ..state import MAINTAINER, Hook, Project, ProtectedBranch
from .http import ApiContext, Reply, paginate

HOOK_EVENT_PARAMS = {"push_events": "push", "merge_requests_events": "merge_request",
                     "note_events": "note", "pipeline_events": "pipeline", "job_events": "job"}


def current_user(ctx: ApiContext) -> Any:
    return ser.user_full(ctx.backend, ctx.user)


def get_user(ctx: ApiContext) -> Any:
    user = ctx.state.users.get(int(ctx.path["uid"]))
    if user is None:
        raise not_found("User")
    return ser.user_basic(ctx.backend, user)


def list_users(ctx: ApiContext) -> Any:
    wanted = ctx.text("username")
    users = [u for u in ctx.state.users.values() if wanted is None or u.username == wanted]
    return paginate(ctx, users, lambda u: ser.user_basic(ctx.backend, u))


def version(ctx: ApiContext) -> Any:
    return {"version": "17.6.0", "revision": "gitlabsim", "kas": {"enabled": False}, "enterprise": False}


def list_projects(ctx: ApiContext) -> Any:
    with ctx.state.lock:
        projects = [p for p in ctx.state.projects.values()
                    if ctx.user.is_admin or effective_access(ctx.state, p, ctx.user) > 0]
        level = ctx.number("min_access_level", 0)
        projects = [p for p in projects if effective_access(ctx.state, p, ctx.user) >= level]
        return paginate(ctx, sorted(projects, key=lambda p: p.id),
                        lambda p: ser.project(ctx.backend, p, ctx.user))


def get_project(ctx: ApiContext) -> Any:
    return ser.project(ctx.backend, ctx.project(), ctx.user)


def _members(ctx: ApiContext, inherited: bool) -> dict[int, int]:
    project = ctx.project()
    levels = dict(project.members)
    if inherited:
        for user_id, level in ctx.state.groups[project.group_id].members.items():
            levels[user_id] = max(level, levels.get(user_id, 0))
    return levels


def list_members(ctx: ApiContext, inherited: bool) -> Any:
    levels = _members(ctx, inherited)
    return paginate(ctx, sorted(levels.items()),
                    lambda item: ser.member(ctx.backend, ctx.state.users[item[0]], item[1]))


def get_member(ctx: ApiContext, inherited: bool) -> Any:
    user_id = int(ctx.path["uid"])
    level = _members(ctx, inherited).get(user_id)
    if not level:
        raise not_found("Member")
    return ser.member(ctx.backend, ctx.state.users[user_id], level)


def _protected_json(rule: ProtectedBranch) -> dict[str, Any]:
    def levels(level: int) -> list[dict[str, Any]]:
        return [{"id": rule.id, "access_level": level, "access_level_description": str(level),
                 "user_id": None, "group_id": None}]
    return {"id": rule.id, "name": rule.name, "push_access_levels": levels(rule.push_access_level),
            "merge_access_levels": levels(rule.merge_access_level), "allow_force_push": rule.allow_force_push,
            "code_owner_approval_required": False}


def list_protected(ctx: ApiContext) -> Any:
    rules = list(ctx.project().protected_branches.values())
    return paginate(ctx, rules, _protected_json)


def get_protected(ctx: ApiContext) -> Any:
    rule = ctx.project().protected_branches.get(ctx.path["name"])
    if rule is None:
        raise not_found("Protected Branch")
    return _protected_json(rule)


def protect(ctx: ApiContext) -> Any:
    project = ctx.project()
    if effective_access(ctx.state, project, ctx.user) < MAINTAINER:
        raise forbidden()
    name = ctx.required("name")
    if name in project.protected_branches:
        raise ApiError(409, "Protected branch 'name' has already been taken")
    rule = ProtectedBranch(ctx.state.next_id("protected_branch"), name,
                           ctx.number("merge_access_level", MAINTAINER),
                           ctx.number("push_access_level", MAINTAINER), ctx.flag("allow_force_push"))
    project.protected_branches[name] = rule
    return Reply(_protected_json(rule), 201)


def unprotect(ctx: ApiContext) -> Any:
    project = ctx.project()
    if effective_access(ctx.state, project, ctx.user) < MAINTAINER:
        raise forbidden()
    if project.protected_branches.pop(ctx.path["name"], None) is None:
        raise not_found("Protected Branch")
    return Response(status_code=204)


def list_branches(ctx: ApiContext) -> Any:
    project = ctx.project()
    search = ctx.text("search") or ""
    heads = sorted((n, s) for n, s in ctx.backend.heads(project).items() if search in n)
    return paginate(ctx, heads, lambda item: ser.branch(ctx.backend, project, item[0], item[1], ctx.user))


def _path_branch(ctx: ApiContext) -> tuple[Project, str, str]:
    """The project, branch name and head sha named by the URL; 404 if absent."""
    project = ctx.project()
    name = ctx.path["branch"]
    sha = ctx.backend.branch_head(project, name)
    if sha is None:
        raise not_found("Branch")
    return project, name, sha


def get_branch(ctx: ApiContext) -> Any:
    project, name, sha = _path_branch(ctx)
    return ser.branch(ctx.backend, project, name, sha, ctx.user)


def create_branch(ctx: ApiContext) -> Any:
    project = ctx.project()
    name, ref = ctx.required("branch"), ctx.required("ref")
    if not can_push_to(ctx.state, project, ctx.user, name):
        raise forbidden()
    repo = ctx.backend.repo(project)
    sha = ctx.backend.branch_head(project, ref) or repo.resolve(ref)
    if sha is None:
        raise ApiError(400, "Invalid reference name")
    if ctx.backend.branch_head(project, name):
        raise ApiError(400, "Branch already exists")
    with ctx.state.lock:
        repo.set_branch(name, sha)
        branch_updated(ctx.backend, project, name, None, sha, ctx.user)
    return Reply(ser.branch(ctx.backend, project, name, sha, ctx.user), 201)


def delete_branch(ctx: ApiContext) -> Any:
    project, name, sha = _path_branch(ctx)
    if name == project.default_branch or not can_push_to(ctx.state, project, ctx.user, name):
        raise forbidden()
    with ctx.state.lock:
        ctx.backend.repo(project).delete_branch(name)
        branch_updated(ctx.backend, project, name, sha, None, ctx.user)
    return Response(status_code=204)


def get_commit(ctx: ApiContext) -> Any:
    project = ctx.project()
    sha = ctx.backend.branch_head(project, ctx.path["sha"]) or ctx.backend.repo(project).resolve(ctx.path["sha"])
    if sha is None:
        raise not_found("Commit")
    return ser.commit_detail(ctx.backend, project, sha)


def _file(ctx: ApiContext) -> tuple[bytes, str]:
    project = ctx.project()
    ref = ctx.text("ref") or project.default_branch
    content = ctx.backend.repo(project).read_file(ref, ctx.path["file_path"])
    if content is None:
        raise not_found("File")
    return content, ref


def raw_file(ctx: ApiContext) -> Any:
    content, _ = _file(ctx)
    return Response(content, media_type="text/plain")


def get_file(ctx: ApiContext) -> Any:
    content, ref = _file(ctx)
    path = ctx.path["file_path"]
    project = ctx.project()
    sha = ctx.backend.branch_head(project, ref) or ref
    return {"file_name": path.rsplit("/", 1)[-1], "file_path": path, "size": len(content),
            "encoding": "base64", "content": base64.b64encode(content).decode(), "ref": ref,
            "commit_id": sha, "last_commit_id": sha, "blob_id": None, "content_sha256": None}


def _hook_json(hook: Hook) -> dict[str, Any]:
    data: dict[str, Any] = {"id": hook.id, "url": hook.url, "project_id": hook.project_id,
                            "enable_ssl_verification": False, "created_at": None}
    data.update({param: event in hook.events for param, event in HOOK_EVENT_PARAMS.items()})
    return data


def list_hooks(ctx: ApiContext) -> Any:
    project = ctx.project()
    hooks = [h for h in ctx.state.hooks.values() if h.project_id == project.id]
    return paginate(ctx, hooks, _hook_json)


def add_hook(ctx: ApiContext) -> Any:
    project = ctx.project()
    if effective_access(ctx.state, project, ctx.user) < MAINTAINER and not ctx.user.is_admin:
        raise forbidden()
    defaults = {"push_events": True}
    events = {event for param, event in HOOK_EVENT_PARAMS.items()
              if ctx.flag(param, defaults.get(param, False))}
    hook = Hook(ctx.state.next_id("hook"), project.id, ctx.required("url"), ctx.text("token"),
                events, ctx.backend.clock.now())
    ctx.state.hooks[hook.id] = hook
    return Reply(_hook_json(hook), 201)


def delete_hook(ctx: ApiContext) -> Any:
    project = ctx.project()
    hook = ctx.state.hooks.get(int(ctx.path["hook_id"]))
    if hook is None or hook.project_id != project.id:
        raise not_found("Hook")
    del ctx.state.hooks[hook.id]
    return Response(status_code=204)
