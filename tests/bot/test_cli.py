import io
import logging

import httpx
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from merge_assist.bot.app import create_app
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import load_settings
from tests.helpers import cli, free_port, http_ok, start_cli, wait_for


def test_serve_on_fresh_checkout_creates_sqlite_and_is_ready(tmp_path):
    port = free_port()
    process = start_cli(["serve", "--port", str(port)], cwd=tmp_path, log_path=tmp_path / "serve.log")
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=30, message="/readyz 200")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json() == {"status": "ready"}
        assert (tmp_path / "merge-assist.db").exists()
        assert cli(["healthcheck"], tmp_path, {"MERGE_ASSIST_PORT": str(port)}).returncode == 0
        unhealthy = cli(["healthcheck"], tmp_path, {"MERGE_ASSIST_PORT": str(free_port())})
        assert unhealthy.returncode == 1 and "/healthz" in unhealthy.stderr
    finally:
        process.terminate()
        process.wait(10)


def test_postgres_serve_refuses_outdated_schema_until_migrated(tmp_path, pg_url):
    no_jwt_secret = cli(["serve", "--port", str(free_port())], tmp_path, {"MERGE_ASSIST_DATABASE_URL": pg_url})
    assert no_jwt_secret.returncode == 2 and "MERGE_ASSIST_JWT_SECRET: required" in no_jwt_secret.stderr
    env = {"MERGE_ASSIST_DATABASE_URL": pg_url, "MERGE_ASSIST_JWT_SECRET": "j" * 40}
    refused = cli(["serve", "--port", str(free_port())], tmp_path, env)
    assert refused.returncode == 2
    assert "merge-assist migrate" in refused.stderr
    migrated = cli(["migrate"], tmp_path, env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    process = start_cli(["serve", "--port", str(port)], cwd=tmp_path, env=env)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=30, message="/readyz 200")
    finally:
        process.terminate()
        process.wait(10)


def test_settings_error_is_one_line_naming_the_variable(tmp_path):
    result = cli(["migrate"], tmp_path, {"MERGE_ASSIST_PORT": "http"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "merge-assist: MERGE_ASSIST_PORT: expected a port number 0-65535, got 'http'"]


def test_create_admin_reads_password_from_file_and_grant(tmp_path):
    password = tmp_path / "pw"
    password.write_text("s3cret-password\n")
    created = cli(["create-admin", "root", "--password-file", str(password)], tmp_path)
    assert created.returncode == 0, created.stderr
    assert "s3cret" not in created.stdout + created.stderr
    no_terminal = cli(["create-admin", "other"], tmp_path, input_text="")
    assert no_terminal.returncode == 2 and "--password-file" in no_terminal.stderr
    again = cli(["create-admin", "root", "--password-file", str(password)], tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert "$2b$" not in again.stderr
    long_password = tmp_path / "long"
    long_password.write_text("x" * 73)
    too_long = cli(["create-admin", "other", "--password-file", str(long_password)], tmp_path)
    assert too_long.returncode == 2 and "72 bytes" in too_long.stderr and "Traceback" not in too_long.stderr
    by_name_only = cli(["grant", "viewer", "--gitlab-user", "alice"], tmp_path)
    assert by_name_only.returncode == 2 and "--gitlab-user-id" in by_name_only.stderr
    granted = cli(["grant", "priority_manager", "--gitlab-user", "alice", "--gitlab-user-id", "101",
                   "--project", "7"], tmp_path)
    assert granted.returncode == 0 and "project 7" in granted.stdout
    bad = cli(["grant", "wizard", "--gitlab-user-id", "101"], tmp_path)
    assert bad.returncode == 2 and "unknown role 'wizard'" in bad.stderr
    unknown = cli(["grant", "viewer", "--gitlab-user-id", "101", "--project", "acme/app"], tmp_path)
    assert unknown.returncode == 2 and "unknown project 'acme/app'" in unknown.stderr

    from merge_assist.storage import Store

    store = Store.open(f"sqlite:///{tmp_path / 'merge-assist.db'}")
    assert store.users.authenticate("root", "s3cret-password") is not None
    assert store.users.roles_for(project_id=7, gitlab_user_id=101) == {"priority_manager"}
    assert store.users.roles_for(project_id=8, gitlab_user_id=101) == frozenset()
    store.projects.register(8, "acme/app")
    by_path = cli(["grant", "viewer", "--gitlab-user-id", "101", "--project", "acme/app"], tmp_path)
    assert by_path.returncode == 0, by_path.stderr
    assert store.users.roles_for(project_id=8, gitlab_user_id=101) == {"viewer"}
    assert [a.action for a in store.audit.entries(action="grant")] == ["grant", "grant"]


def test_error_page_and_logs_never_show_secrets(tmp_path, caplog):
    secret_file = tmp_path / "secret"
    secret_file.write_text("webhook-secret-value")
    settings = load_settings({"MERGE_ASSIST_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                              "MERGE_ASSIST_WEBHOOK_SECRET_FILE": str(secret_file)})
    from merge_assist.bot.logs import configure_logging

    handler = configure_logging(settings)
    stream = io.StringIO()
    handler.setStream(stream)
    app = create_app(Runtime.build(settings, run_workers=False))

    def explode(request):
        raise RuntimeError(f"boom with {settings.webhook_secret.reveal()}")

    app.router.routes.append(Route("/explode", explode))
    with caplog.at_level(logging.ERROR):
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/explode")
    assert response.status_code == 500
    assert "webhook-secret-value" not in response.text
    assert response.json() == {"error": "internal error"}
    assert "webhook-secret-value" not in repr(settings)
    logging.getLogger("merge_assist.test").error("leak attempt: %s", settings.webhook_secret.reveal())
    logging.getLogger().removeHandler(handler)
    assert "boom" not in response.text
    assert "unhandled error on GET /explode" in stream.getvalue()
    assert "leak attempt: **********" in stream.getvalue()
    assert "webhook-secret-value" not in stream.getvalue()


@pytest.mark.parametrize("args", [["worker"]])
def test_worker_needs_redis(tmp_path, args):
    result = cli(args, tmp_path)
    assert result.returncode == 2
    assert "MERGE_ASSIST_REDIS_URL" in result.stderr


def test_unreachable_database_is_one_clear_line_without_the_password(tmp_path):
    env = {"MERGE_ASSIST_DATABASE_URL": "postgresql://bot:hunter2-secret@127.0.0.1:1/merge_assist",
           "MERGE_ASSIST_JWT_SECRET": "j" * 40}
    result = cli(["serve", "--port", str(free_port())], tmp_path, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the database" in lines[0]
    assert "hunter2-secret" not in result.stderr
