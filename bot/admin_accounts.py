"""Admin API: signing in and out (with throttling), one's own password, users, grants, Slack links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from merge_assist.bot.admin_http import ApiError, ApiRoute, Body, Call, no_project, unauthorized
from merge_assist.bot.admin_policy import ROLE_PERMISSIONS, Permission
from merge_assist.bot.admin_tokens import REFRESH, REFRESH_SECONDS, TokenRefused
from merge_assist.rules.model import Actor
from merge_assist.storage.passwords import PasswordRejected, check_password_length
from merge_assist.storage.sessions import RefreshRefused
from merge_assist.storage.types import utcnow
from merge_assist.storage.users import GrantView, InvalidUsername, UnknownRole, UnknownUser, UserExists, UserView

FAILURE_WINDOW = timedelta(minutes=15)
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
V1 = "/api/v1"


def user_json(user: UserView) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email, "active": user.active,
            "gitlab_user_id": user.gitlab_user_id, "gitlab_username": user.gitlab_username,
            "slack_user_id": user.slack_user_id, "can_sign_in": user.has_password,
            "created_at": user.created_at.isoformat() if user.created_at else None,
            "updated_at": user.updated_at.isoformat() if user.updated_at else None}


def grant_json(grant: GrantView) -> dict[str, Any]:
    return {"id": grant.id, "user_id": grant.user_id, "role": grant.role, "project_id": grant.project_id,
            "granted_by": grant.granted_by, "created_at": grant.created_at.isoformat()}


def _throttle(call: Call, username: str) -> None:
    failures = call.runtime.store.sign_in_failures
    for key, limit in ((f"user:{username}", FAILURES_PER_USER), (f"addr:{call.client}", FAILURES_PER_ADDRESS)):
        count, oldest = failures.recent(key, FAILURE_WINDOW)
        if count >= limit and oldest is not None:
            retry_after = max(1, int((oldest + FAILURE_WINDOW - utcnow()).total_seconds()) + 1)
            call.runtime.store.audit.record(Actor(None, username[:255], "api"), "sign_in", "sign-in", "throttled",
                                            f"{key.split(':')[0]} has {count} failures; address {call.client}")
            error = ApiError(429, "too many failed sign-ins; try again later", retry_after=retry_after)
            error.headers["Retry-After"] = str(retry_after)
            raise error


def sign_in(call: Call) -> dict[str, Any]:
    username, password = call.field("username"), call.field("password")
    try:
        check_password_length(password)  # before any lookup: the same answer for every name
    except PasswordRejected as exc:
        raise ApiError(400, str(exc)) from None
    _throttle(call, username)
    store = call.runtime.store
    user = store.users.authenticate(username, password)
    if user is None:
        store.sign_in_failures.record([f"user:{username}", f"addr:{call.client}"], FAILURE_WINDOW)
        store.audit.record(Actor(None, username[:255], "api"), "sign_in", "sign-in", "refused",
                           f"wrong username or password from {call.client}")
        raise ApiError(401, "wrong username or password")
    store.sign_in_failures.clear(f"user:{username}")
    session_id, refresh_jti = store.sessions.start(user.id, timedelta(seconds=REFRESH_SECONDS))
    store.audit.record(Actor(user.gitlab_user_id, user.username, "api"), "sign_in", f"user:{user.id}", "ok",
                       f"from {call.client}")
    return call.tokens.pair(user.id, session_id, refresh_jti)


def refresh(call: Call) -> dict[str, Any]:
    token = call.field("refresh_token")
    try:
        claims = call.tokens.decode(token, REFRESH)
        user, refresh_jti = call.runtime.store.sessions.rotate(claims.session_id, claims.user_id, claims.token_id)
    except (TokenRefused, RefreshRefused) as exc:
        raise unauthorized(str(exc)) from None
    return call.tokens.pair(user.user_id, user.session_id, refresh_jti)


def sign_out(call: Call) -> dict[str, Any]:
    call.runtime.store.sessions.revoke(call.user.session_id)
    call.audit("sign_out", f"user:{call.user.user_id}")
    return {"signed_out": True}


def change_password(call: Call) -> dict[str, Any]:
    current, new = call.field("current_password"), call.field("new_password")
    users = call.runtime.store.users
    try:
        if not users.password_ok(call.user.user_id, current):
            raise ApiError(400, "current_password: wrong password")
        users.update(call.user.user_id, password=new)
    except PasswordRejected as exc:
        raise ApiError(400, str(exc)) from None
    revoked = call.runtime.store.sessions.revoke_all(call.user.user_id)
    call.audit("password", f"user:{call.user.user_id}", detail=f"{revoked} sessions signed out")
    return {"sessions_signed_out": revoked}


def me(call: Call) -> dict[str, Any]:
    user = call.user
    return {"id": user.user_id, "username": user.username, "gitlab_user_id": user.gitlab_user_id,
            "grants": [{"role": g.role, "project_id": g.project_id} for g in user.grants],
            "permissions": user.permissions_on(None)}


def list_users(call: Call) -> dict[str, Any]:
    return {"users": [user_json(u) for u in call.runtime.store.users.all_users()]}


def create_user(call: Call) -> dict[str, Any]:
    username, password = call.field("username"), call.field("password")
    try:
        user = call.runtime.store.users.create_local(username, password, call.field("email"))
    except (PasswordRejected, InvalidUsername) as exc:
        raise ApiError(400, str(exc)) from None
    except UserExists as exc:
        raise ApiError(409, str(exc)) from None
    call.audit("user:create", f"user:{user.id}", detail=username)
    return user_json(user)


def update_user(call: Call) -> dict[str, Any]:
    user_id = int(call.params["user_id"])
    active, password = call.field("active"), call.field("password")
    gitlab_id = call.field("gitlab_user_id")
    store = call.runtime.store
    try:
        user = store.users.update(user_id, email=call.field("email"), active=active,
                                  password=password)
        if gitlab_id is not None:
            user = store.users.link_gitlab(user_id, gitlab_id,
                                           call.field("gitlab_username") or str(gitlab_id))
    except UnknownUser as exc:
        raise ApiError(404, str(exc)) from None
    except PasswordRejected as exc:
        raise ApiError(400, str(exc)) from None
    except UserExists as exc:
        raise ApiError(409, str(exc)) from None
    revoked = store.sessions.revoke_all(user_id) if active is False or password is not None else 0
    changed = sorted(k for k in ("email", "active", "password", "gitlab_user_id") if call.body.get(k) is not None)
    call.audit("user:update", f"user:{user_id}", detail=f"changed {', '.join(changed) or 'nothing'}; "
                                                        f"{revoked} sessions signed out")
    return user_json(user)


def list_grants(call: Call) -> dict[str, Any]:
    visible = call.user.projects_with(Permission.READ)
    grants = call.runtime.store.users.grants()
    return {"grants": [grant_json(g) for g in grants
                       if visible is None or (g.project_id is not None and g.project_id in visible)]}


def grant_project(call: Call) -> int | None:
    value = call.field("project_id")
    return int(value) if value is not None else None


def _grantee(call: Call) -> int:
    """The user row of `user_id`, or of a GitLab user given by id (created on first grant)."""
    user_id = call.field("user_id")
    if user_id is not None:
        return int(user_id)
    gitlab_id = call.field("gitlab_user_id")
    if gitlab_id is None:
        raise ApiError(400, "user_id or gitlab_user_id: required")
    name = call.field("gitlab_username") or str(gitlab_id)
    return call.runtime.store.users.ensure_gitlab_user(name, gitlab_id).id


def create_grant(call: Call) -> dict[str, Any]:
    role, project_id = call.field("role"), call.project_id
    if not call.user.may_grant(role, project_id):
        call.audit("grant", "-", "refused", f"{role} on {project_id or 'all projects'} needs an admin")
        raise ApiError(403, "only admins grant the admin role or roles on all projects")
    try:
        grant = call.runtime.store.users.grant(_grantee(call), role, project_id, granted_by=call.user.username)
    except UnknownRole as exc:
        raise ApiError(400, str(exc)) from None
    except UnknownUser as exc:
        raise ApiError(404, str(exc)) from None
    call.audit("grant", f"user:{grant.user_id}", detail=f"{role} on {project_id or 'all projects'}")
    return grant_json(grant)


def existing_grant_project(call: Call) -> int | None:
    grant = call.runtime.store.users.get_grant(int(call.params["grant_id"]))
    if grant is None:
        raise ApiError(404, f"no grant with id {call.params['grant_id']}")
    return grant.project_id


def delete_grant(call: Call) -> dict[str, Any]:
    grant = call.runtime.store.users.get_grant(int(call.params["grant_id"]))
    assert grant is not None  # the scope lookup answered 404 otherwise
    if not call.user.may_grant(grant.role, grant.project_id):
        call.audit("revoke", f"user:{grant.user_id}", "refused", f"{grant.role} needs an admin")
        raise ApiError(403, "only admins revoke the admin role or roles on all projects")
    call.runtime.store.users.revoke_grant(grant.id)
    call.audit("revoke", f"user:{grant.user_id}", detail=f"{grant.role} on {grant.project_id or 'all projects'}")
    return {"revoked": grant_json(grant)}


def list_roles(_call: Call) -> dict[str, Any]:
    return {"roles": [{"name": role, "permissions": sorted(p.value for p in permissions)}
                      for role, permissions in ROLE_PERMISSIONS.items()]}


def slack_links(call: Call) -> dict[str, Any]:
    return {"links": [{"slack_user_id": u.slack_user_id, "gitlab_user_id": u.gitlab_user_id,
                       "gitlab_username": u.gitlab_username} for u in call.runtime.store.users.slack_links()]}


ACCOUNT_ROUTES = (
    ApiRoute("POST", f"{V1}/auth/token", sign_in, None, "Sign in: an access and a refresh token",
             body=Body({"username": str, "password": str}, required=("username", "password"))),
    ApiRoute("POST", f"{V1}/auth/refresh", refresh, None, "Swap a refresh token for a new pair",
             body=Body({"refresh_token": str}, required=("refresh_token",))),
    ApiRoute("POST", f"{V1}/auth/sign-out", sign_out, Permission.SIGNED_IN, "End this session"),
    ApiRoute("POST", f"{V1}/auth/password", change_password, Permission.SIGNED_IN,
             "Change one's password (signs out every session)", body=Body({"current_password": str, "new_password": str}, required=("current_password", "new_password"))),
    ApiRoute("GET", f"{V1}/me", me, Permission.SIGNED_IN, "The signed-in user, grants and permissions"),
    ApiRoute("GET", f"{V1}/users", list_users, Permission.MANAGE_USERS, "All users"),
    ApiRoute("POST", f"{V1}/users", create_user, Permission.MANAGE_USERS, "Create a local user",
             body=Body({"username": str, "password": str, "email": str}, required=("username", "password")),
             status=201),
    ApiRoute("PATCH", f"{V1}/users/{{user_id:int}}", update_user, Permission.MANAGE_USERS,
             "Change a user (deactivating or a new password signs them out)",
             body=Body({"email": str, "active": bool, "password": str, "gitlab_user_id": int, "gitlab_username": str})),
    ApiRoute("GET", f"{V1}/roles", list_roles, Permission.SIGNED_IN, "The roles and the permissions each gives"),
    ApiRoute("GET", f"{V1}/grants", list_grants, Permission.SIGNED_IN, "Role grants visible to the caller"),
    ApiRoute("POST", f"{V1}/grants", create_grant, Permission.MANAGE_GRANTS, "Grant a role",
             scope=grant_project, body=Body({"role": str, "user_id": int, "gitlab_user_id": int, "gitlab_username": str,
                                             "project_id": int}, required=("role",)),
             status=201),
    ApiRoute("DELETE", f"{V1}/grants/{{grant_id:int}}", delete_grant, Permission.MANAGE_GRANTS, "Revoke a grant",
             scope=existing_grant_project),
    ApiRoute("GET", f"{V1}/slack-links", slack_links, Permission.READ, "Slack users linked to GitLab users",
             scope=no_project),
)
