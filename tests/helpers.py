"""Small helpers shared by tests: free ports, waiting, running the CLI as a real process, webhook
payloads, a stand-in for the bot's command services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

from gitlab_sim import waiting
from gitlab_sim.network import free_port
from merge_assist.rules.hookspecs import AuthRequest, RuleDescription, hookimpl
from merge_assist.rules.model import Actor, Priority

__all__ = ["FIXTURES", "REPO", "cli", "clean_env", "free_port", "http_ok", "start_cli", "wait_for", "webhook_payload",
           "ALICE", "FakeServices", "RaisesEverywhere", "auth_request"]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "bot" / "fixtures"
"""Real GitLab webhook payloads, copied from the reference material (the one copy, for every test)."""


def webhook_payload(name: str) -> dict[str, Any]:
    """A fresh copy of the payload in FIXTURES/<name>."""
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return payload


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


class FakeServices:
    """Stands in for the bot's CommandServices: records each call and replies with it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def _record(self, *call: str) -> str:
        self.calls.append(call)
        return " ".join(call)

    def enqueue(self, priority: Priority) -> str:
        return self._record("enqueue", priority.label)

    def cancel(self) -> str:
        return self._record("cancel")

    def set_priority(self, priority: Priority) -> str:
        return self._record("set_priority", priority.label)

    def retry(self) -> str:
        return self._record("retry")

    def status(self) -> str:
        return self._record("status")

    def help(self) -> str:
        return self._record("help")


ALICE = Actor(gitlab_user_id=1, username="alice")


def auth_request(**fields: Any) -> AuthRequest:
    """Alice asks to merge !42 into main of project 7 as a Developer; `fields` override."""
    defaults: dict[str, Any] = dict(command="merge", actor=ALICE, project_id=7, mr_iid=42, target_branch="main",
                                    access_level=30)
    return AuthRequest(**{**defaults, **fields})


def _raise(plugin: "RaisesEverywhere") -> None:
    raise RuntimeError(f"{plugin.MERGE_ASSIST_NAME} always raises")


class RaisesEverywhere:
    """A plugin that implements every hook and raises in each one; with `describes`, except in
    its rule description, so that it has a rule name (and options such as `on_error`)."""

    def __init__(self, name: str, describes: bool = False) -> None:
        self.MERGE_ASSIST_NAME = name
        self.describes = describes

    @hookimpl
    def merge_assist_describe_rule(self) -> RuleDescription:
        if not self.describes:
            _raise(self)
        return RuleDescription(self.MERGE_ASSIST_NAME, "Raises in every other hook.")

    merge_assist_check_enqueue = merge_assist_check_merge = merge_assist_adjust_priority = hookimpl(_raise)
    merge_assist_authorize = merge_assist_register_commands = hookimpl(_raise)
    merge_assist_before_merge = merge_assist_after_merge = merge_assist_merge_failed = hookimpl(_raise)
