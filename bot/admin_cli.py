"""CLI twins of the admin API for bootstrap and recovery: create-admin, reset-password, users,
grant/revoke and link-slack. Every change is audited (channel `cli`); errors are one line.

GitLab users are named on the command line but stored by id: the name is resolved to an id once,
here, through the GitLab API (or given with --gitlab-user-id).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from merge_assist.bot.settings import Settings
from merge_assist.rules.model import Actor
from merge_assist.storage.passwords import PasswordRejected, check_new_password
from merge_assist.storage.users import InvalidUsername, UnknownRole, UserExists

if TYPE_CHECKING:
    from merge_assist.storage import Store


class CliError(Exception):
    """An error to print as one line and exit with status 2."""


CLI_ACTOR = Actor(None, "cli", "cli")


def _store(settings: Settings) -> "Store":
    from merge_assist.bot.runtime import open_store_checked

    return open_store_checked(settings)


def read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            text = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read {args.password_file} ({exc.strerror})") from None
        if not text:
            raise CliError(f"{args.password_file} is empty")
        password = text
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal to prompt for a password; use --password-file")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat: "):
            raise CliError("the passwords differ")
    try:
        check_new_password(password)
    except PasswordRejected as exc:
        raise CliError(str(exc)) from None
    return password


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    password = read_password(args)
    store = _store(settings)
    try:
        user = store.users.create_local(args.username, password, args.email)
    except (UserExists, PasswordRejected, InvalidUsername) as exc:
        raise CliError(f"{exc}; use `merge-assist reset-password {args.username}` to set a new password"
                       if isinstance(exc, UserExists) else str(exc)) from None
    store.users.grant(user.id, "admin", granted_by="cli")
    store.audit.record(CLI_ACTOR, "user:create", f"user:{user.id}", "ok", f"{user.username} as admin")
    print(f"created admin {user.username}")
    return 0


def cmd_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    user = store.users.by_username(args.username)
    if user is None:
        raise CliError(f"no user named {args.username!r}; `merge-assist users` lists them")
    password = read_password(args)
    store.users.update(user.id, password=password, active=True if args.activate else None)
    revoked = store.sessions.revoke_all(user.id)
    store.audit.record(CLI_ACTOR, "user:update", f"user:{user.id}", "ok",
                       f"password reset{', activated' if args.activate else ''}; {revoked} sessions signed out")
    print(f"password of {user.username} reset; {revoked} sessions signed out")
    return 0


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    grants: dict[int, list[str]] = {}
    for grant in store.users.grants():
        grants.setdefault(grant.user_id, []).append(
            f"{grant.role}@{grant.project_id}" if grant.project_id is not None else grant.role)
    for user in store.users.all_users():
        gitlab = f"gitlab {user.gitlab_username or '?'} (id {user.gitlab_user_id})" if user.gitlab_user_id else ""
        state = "active" if user.active else "deactivated"
        print(f"{user.id:>5}  {user.username:<24} {state:<11} {gitlab:<32} {', '.join(grants.get(user.id, [])) or '-'}")
    return 0


def resolve_gitlab_user(settings: Settings, name: str | None, user_id: int | None) -> tuple[int, str]:
    """(id, name) of a GitLab user, looked up once through the GitLab API when only one is known."""
    if user_id is not None and name is not None:
        return user_id, name
    if not (settings.gitlab_url and settings.gitlab_token):
        if user_id is not None:
            return user_id, str(user_id)
        raise CliError(f"cannot resolve GitLab user {name!r} to an id: set MERGE_ASSIST_GITLAB_URL and "
                       "MERGE_ASSIST_GITLAB_TOKEN, or give --gitlab-user-id")
    import gitlab

    client = gitlab.Gitlab(settings.gitlab_url, private_token=settings.gitlab_token.reveal(), timeout=15)
    try:
        if user_id is not None:
            return user_id, str(client.users.get(user_id).username)
        found = [u for u in client.users.list(username=name, get_all=False) if u.username == name]
    except gitlab.exceptions.GitlabGetError:
        raise CliError(f"GitLab has no user with id {user_id}") from None
    except (gitlab.exceptions.GitlabError, OSError) as exc:
        raise CliError(f"GitLab did not answer the user lookup ({type(exc).__name__})") from None
    if not found:
        raise CliError(f"GitLab has no user named {name!r}")
    return int(found[0].id), str(found[0].username)


def _grantee(settings: Settings, store: "Store", args: argparse.Namespace) -> tuple[int, str]:
    if args.user:
        local = store.users.by_username(args.user)
        if local is None:
            raise CliError(f"no user named {args.user!r}; `merge-assist users` lists them")
        return local.id, args.user
    if args.gitlab_user is None and args.gitlab_user_id is None:
        raise CliError("name who: --gitlab-user NAME, --gitlab-user-id ID or --user LOCAL_NAME")
    gitlab_id, name = resolve_gitlab_user(settings, args.gitlab_user, args.gitlab_user_id)
    return store.users.ensure_gitlab_user(name, gitlab_id).id, f"{name} (GitLab id {gitlab_id})"


def cmd_grant(settings: Settings, args: argparse.Namespace, project_id_of: Callable[..., int]) -> int:
    store = _store(settings)
    project_id = project_id_of(settings, store, args.project) if args.project else None
    user_id, who = _grantee(settings, store, args)
    revoke = args.revoke or args.command == "revoke"
    try:
        if revoke:
            removed = store.users.revoke(user_id, args.role, project_id)
        else:
            store.users.grant(user_id, args.role, project_id, granted_by="cli")
    except UnknownRole as exc:
        raise CliError(str(exc)) from None
    scope = f"project {args.project}" if args.project else "all projects"
    if revoke and not removed:
        print(f"{who} did not hold {args.role} on {scope}")
        return 0
    store.audit.record(CLI_ACTOR, "revoke" if revoke else "grant", f"user:{user_id}", "ok", f"{args.role} on {scope}")
    print(f"{'revoked' if revoke else 'granted'} {args.role} for {who} on {scope}")
    return 0


def cmd_link_slack(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    gitlab_id, name = resolve_gitlab_user(settings, args.gitlab_user, args.gitlab_user_id)
    try:
        user = store.users.link_slack(name, args.slack_user, gitlab_id)
    except UserExists as exc:
        raise CliError(str(exc)) from None
    store.audit.record(CLI_ACTOR, "link-slack", f"user:{user.id}", "ok", f"Slack {args.slack_user}")
    print(f"linked Slack user {args.slack_user} to GitLab user {name} (id {gitlab_id})")
    return 0


def add_account_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]",
                         grant_handler: Callable[[Settings, argparse.Namespace], int]) -> None:
    p = sub.add_parser("create-admin", help="create a local admin user (password prompted or from a file)")
    p.add_argument("username")
    p.add_argument("--email")
    p.add_argument("--password-file")
    p.set_defaults(func=cmd_create_admin)
    p = sub.add_parser("reset-password", help="set a local user's password (signs out their sessions)")
    p.add_argument("username")
    p.add_argument("--password-file")
    p.add_argument("--activate", action="store_true", help="also reactivate a deactivated account")
    p.set_defaults(func=cmd_reset_password)
    sub.add_parser("users", help="list users, their GitLab ids and their roles").set_defaults(func=cmd_users)
    for name in ("grant", "revoke"):
        p = sub.add_parser(name, help=f"{name} a bot role (GitLab users are stored by id)")
        p.add_argument("role", help="admin, project_owner, priority_manager or viewer")
        p.add_argument("--gitlab-user", help="GitLab username, resolved to its id once through GitLab")
        p.add_argument("--gitlab-user-id", type=int)
        p.add_argument("--user", help="a local (dashboard) account instead of a GitLab user")
        p.add_argument("--project", help="GitLab project id or path, e.g. 42 or group/app (default: all projects)")
        p.add_argument("--revoke", action="store_true", help=argparse.SUPPRESS)
        p.set_defaults(func=grant_handler)
    p = sub.add_parser("link-slack", help="let a Slack user act as a GitLab user")
    p.add_argument("--gitlab-user")
    p.add_argument("--gitlab-user-id", type=int)
    p.add_argument("--slack-user", required=True)
    p.set_defaults(func=cmd_link_slack)
