"""The `merge-assist` command line: serve, worker, migrate, create-admin, grant, link-slack, demo."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from merge_assist.bot.runtime import SchemaRefused
from merge_assist.bot.settings import Settings, SettingsError, load_settings
from merge_assist.rules.config import ConfigError

log = logging.getLogger("merge_assist.cli")


class CliError(Exception):
    """An error to print as one line and exit with status 2."""


def _store(settings: Settings):  # type: ignore[no-untyped-def]
    from merge_assist.storage import Store

    return Store.open(settings.database_url)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from merge_assist.storage import migrate

    store = _store(settings)
    if args.down_to:
        migrate.downgrade(store.db, args.down_to)
    else:
        migrate.upgrade(store.db)
    print(f"schema at {migrate.current_revision(store.db) or 'base'}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        text = Path(args.password_file).read_text(encoding="utf-8").strip()
        if not text:
            raise CliError(f"{args.password_file} is empty")
        return text
    if not sys.stdin.isatty():
        raise CliError("no terminal to prompt for a password; use --password-file")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        raise CliError("the passwords differ")
    return first


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    from merge_assist.bot.runtime import open_store_checked

    password = _read_password(args)
    if len(password) < 8:
        raise CliError("the password must have at least 8 characters")
    store = open_store_checked(settings)
    user = store.users.create_local(args.username, password)
    store.users.grant(user.id, "admin", granted_by="cli")
    print(f"created admin {user.username}")
    return 0


def cmd_grant(settings: Settings, args: argparse.Namespace) -> int:
    from merge_assist.bot.runtime import open_store_checked
    from merge_assist.storage.users import UnknownRole

    store = open_store_checked(settings)
    project_id = _project_id(settings, store, args.project) if args.project else None
    user = store.users.ensure_gitlab_user(args.gitlab_user, args.gitlab_user_id)
    try:
        if args.revoke:
            store.users.revoke(user.id, args.role, project_id)
        else:
            store.users.grant(user.id, args.role, project_id, granted_by="cli")
    except UnknownRole as exc:
        raise CliError(str(exc)) from None
    scope = f"project {args.project}" if args.project else "all projects"
    print(f"{'revoked' if args.revoke else 'granted'} {args.role} for {args.gitlab_user} on {scope}")
    return 0


def _project_id(settings: Settings, store, project: str) -> int:  # type: ignore[no-untyped-def]
    """A project given as a numeric id or as `group/name` (known to the bot or to GitLab)."""
    if project.isdigit():
        return int(project)
    known = store.projects.by_path(project)
    if known is not None:
        return known.id
    if settings.gitlab_url and settings.gitlab_token:
        from merge_assist.adapters.gitlab import PythonGitlabAdapter

        found = PythonGitlabAdapter(settings.gitlab_url, settings.gitlab_token.reveal()).get_project_by_path(project)
        if found is not None:
            return found.id
    raise CliError(f"unknown project {project!r}: give its numeric id, or configure MERGE_ASSIST_GITLAB_URL")


def cmd_link_slack(settings: Settings, args: argparse.Namespace) -> int:
    from merge_assist.bot.runtime import open_store_checked

    store = open_store_checked(settings)
    store.users.link_slack(args.gitlab_user, args.slack_user, args.gitlab_user_id)
    print(f"linked Slack user {args.slack_user} to GitLab user {args.gitlab_user}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from merge_assist.bot.app import create_app
    from merge_assist.bot.runtime import Runtime

    runtime = Runtime.build(settings, run_workers=settings.is_embedded)
    host, port = args.host or settings.host, args.port if args.port is not None else settings.port
    log.info("serving on http://%s:%s (%s mode)", host, port, "embedded" if settings.is_embedded else "production")
    # log_config=None: uvicorn logs through our redacting handler instead of its own.
    uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning", access_log=False, log_config=None)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from merge_assist.bot.runtime import Runtime

    if settings.is_embedded:
        raise CliError("MERGE_ASSIST_REDIS_URL: required for a separate worker (embedded mode runs workers in `serve`)")
    from merge_assist.bot.observability import start_worker_status

    runtime = Runtime.build(settings, run_workers=True)
    status = start_worker_status(runtime, settings.host, settings.metrics_port)
    try:
        runtime.run_forever()
    finally:
        if status is not None:
            status.shutdown()
    return 0


def cmd_healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    """The container's HEALTHCHECK: 0 when this container's process answers /healthz
    (`serve` on MERGE_ASSIST_PORT, a `worker` on MERGE_ASSIST_METRICS_PORT)."""
    import httpx

    for port in sorted({settings.port, settings.metrics_port} - {0}):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=4.0).raise_for_status()
            return 0
        except httpx.HTTPError:
            continue
    print("merge-assist: nothing answers /healthz on this container's ports", file=sys.stderr)
    return 1


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from merge_assist.bot.demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name != "gitlab_sim":
            raise
        print("merge-assist: the demo needs the GitLab simulator, which production installs leave out: "
              "pip install -e ./gitlab-sim (from a checkout of Merge Assist)", file=sys.stderr)
        return 2

    return run_demo(port=args.port, keep_running=not args.once)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="merge-assist", description="A GitLab merge queue bot.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the web service (and, embedded, the workers)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run queue workers (production mode)").set_defaults(func=cmd_worker)
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--down-to", help="downgrade to this revision instead (e.g. base)")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("create-admin", help="create a local admin user (password prompted or from a file)")
    p.add_argument("username")
    p.add_argument("--password-file")
    p.set_defaults(func=cmd_create_admin)
    p = sub.add_parser("grant", help="grant a bot role to a GitLab user")
    p.add_argument("role", help="admin, project_owner, priority_manager or viewer")
    p.add_argument("--gitlab-user", required=True)
    p.add_argument("--gitlab-user-id", type=int)
    p.add_argument("--project", help="GitLab project id or path, e.g. 42 or group/app (default: all projects)")
    p.add_argument("--revoke", action="store_true")
    p.set_defaults(func=cmd_grant)
    p = sub.add_parser("link-slack", help="let a Slack user act as a GitLab user")
    p.add_argument("--gitlab-user", required=True)
    p.add_argument("--gitlab-user-id", type=int)
    p.add_argument("--slack-user", required=True)
    p.set_defaults(func=cmd_link_slack)
    sub.add_parser("healthcheck", help="exit 0 if serve or worker answers /healthz here (for containers)"
                   ).set_defaults(func=cmd_healthcheck)
    p = sub.add_parser("demo", help="run the bot against a local GitLab simulator with sample MRs")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--once", action="store_true", help="exit when the sample queue has drained")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        from merge_assist.bot.logs import configure_logging

        configure_logging(settings)
        handler: Callable[[Settings, argparse.Namespace], int] = args.func
        return handler(settings, args)
    except (SettingsError, CliError, SchemaRefused, ConfigError) as exc:
        print(f"merge-assist: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
