"""Small helpers shared by tests: free ports, waiting, running the CLI as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

from gitlab_sim import waiting

__all__ = ["REPO", "cli", "clean_env", "free_port", "http_ok", "start_cli", "wait_for"]

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without any MERGE_ASSIST_ variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGE_ASSIST_")}
    env.update(extra or {})
    return env


def cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "merge_assist.bot.cli", *args], cwd=cwd, env=clean_env(env),
                          capture_output=True, text=True, timeout=timeout, input=input_text)


def start_cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None,
              log_path: Path | None = None, module: str = "merge_assist.bot.cli") -> subprocess.Popen[bytes]:
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    environment = clean_env(env)
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=environment,
                            stdout=out, stderr=subprocess.STDOUT)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """gitlab_sim's wait_for with the longer default the end-to-end tests want on a busy CI machine."""
    return waiting.wait_for(predicate, timeout, interval, message)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
