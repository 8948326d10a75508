"""Test helpers: a webhook receiver, a JSON shape comparison, a git runner, an API client."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx



@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A tiny HTTP server recording webhook requests; fails the first ``fail_first`` ones with 500."""

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append(Received(dict(self.headers.items()), body))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"boom" if failing else b"ok")

            def log_message(self, *_: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def events(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.headers["X-Gitlab-Event"] == name]


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def shape_differences(expected: Any, actual: Any, path: str = "$") -> tuple[list[str], list[str]]:
    """Compare ``actual`` with a documented example: (type mismatches, keys missing in actual).

    null on either side matches any type (documented examples and real payloads
    both use null for "not set"); list items are compared with the example's items.
    """
    mismatches: list[str] = []
    missing: list[str] = []
    if expected is None or actual is None:
        return mismatches, missing
    if json_type(expected) != json_type(actual):
        return [f"{path}: expected {json_type(expected)}, got {json_type(actual)}"], missing
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                missing.append(f"{path}.{key}")
                continue
            sub_mismatches, sub_missing = shape_differences(value, actual[key], f"{path}.{key}")
            mismatches += sub_mismatches
            missing += sub_missing
    elif isinstance(expected, list) and expected:
        for index, item in enumerate(actual):
            sub_mismatches, sub_missing = shape_differences(expected[0], item, f"{path}[]")
            mismatches += sub_mismatches
            missing += [m for m in sub_missing if m not in missing] if index == 0 else []
    return mismatches, missing


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.com",
           "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check)


def api(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base_url}/api/v4", headers={"PRIVATE-TOKEN": token}, timeout=10)
