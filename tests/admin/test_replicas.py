"""Two `serve` processes (PostgreSQL, one shared JWT secret) accept each other's tokens, and a
sign-out through one is honoured by the other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.helpers import cli, free_port, http_ok, start_cli, wait_for

PASSWORD = "replica-admin-password"


def test_two_serve_processes_accept_each_others_tokens(tmp_path: Path, pg_url: str) -> None:
    env = {"MERGE_ASSIST_DATABASE_URL": pg_url, "MERGE_ASSIST_JWT_SECRET": "shared-replica-secret-" + "r" * 24}
    assert cli(["migrate"], tmp_path, env).returncode == 0
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD)
    created = cli(["create-admin", "root", "--password-file", str(password_file)], tmp_path, env)
    assert created.returncode == 0, created.stderr
    ports = [free_port(), free_port()]
    processes: list[subprocess.Popen[bytes]] = [
        start_cli(["serve", "--port", str(port)], cwd=tmp_path, env=env, log_path=tmp_path / f"serve-{port}.log")
        for port in ports]
    try:
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        for url in (first, second):
            wait_for(lambda url=url: http_ok(f"{url}/readyz"), timeout=60, message=f"{url}/readyz")
        pair = httpx.post(f"{first}/api/v1/auth/token", json={"username": "root", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert httpx.get(f"{second}/api/v1/me", headers=headers).json()["username"] == "root"
        renewed = httpx.post(f"{second}/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert renewed.status_code == 200
        new_headers = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
        assert httpx.get(f"{first}/api/v1/lanes", headers=new_headers).status_code == 200
        assert httpx.post(f"{first}/api/v1/auth/refresh",
                          json={"refresh_token": pair["refresh_token"]}).status_code == 401  # replayed on the other
        assert httpx.get(f"{second}/api/v1/me", headers=new_headers).status_code == 401  # the replay ended it
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
