"""The `merge-assist` command line: serve, worker, migrate, demo, and the account commands
(create-admin, reset-password, users, grant, revoke, link-slack: see admin_cli)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from merge_assist.bot import admin_cli
from merge_assist.bot.runtime import SchemaRefused
from merge_assist.bot.settings import Settings, SettingsError, load_settings, redact_url
from merge_assist.rules.config import ConfigError

if TYPE_CHECKING:
    from merge_assist.storage import Store

log = logging.getLogger("merge_assist.cli")


CliError = admin_cli.CliError


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


def cmd_grant(settings: Settings, args: argparse.Namespace) -> int:
    return admin_cli.cmd_grant(settings, args, _project_id)


def _project_id(settings: Settings, store: Store, project: str) -> int:
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


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from merge_assist.bot.app import create_app
    from merge_assist.bot.runtime import Runtime

    if settings.jwt_secret is None and settings.may_have_replicas:
        raise CliError("MERGE_ASSIST_JWT_SECRET: required when MERGE_ASSIST_REDIS_URL is set or the database is "
                       "PostgreSQL, so that every serve replica accepts the others' tokens "
                       "(e.g. `openssl rand -base64 48`)")
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
    admin_cli.add_account_commands(sub, cmd_grant)
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
        print(f"merge-assist: {redact_url(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one redacted line instead of a traceback full of URLs
        print(f"merge-assist: {_one_line(exc)}", file=sys.stderr)
        log.debug("the command failed", exc_info=True)  # the redacting handler masks URLs there too
        return 1


def _one_line(error: BaseException) -> str:
    """The error's type and first line, e.g. `OperationalError: could not connect to server`."""
    inner = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    first = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return redact_url(f"{type(inner).__name__}: {first}"[:500])


if __name__ == "__main__":
    sys.exit(main())
