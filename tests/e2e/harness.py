"""The bot under test, against the GitLab simulator over real HTTP, in either mode.

embedded: `Runtime` with SQLite and the in-process queue, served by uvicorn on a thread.
production: PostgreSQL + Redis, `merge-assist serve` and a separate `merge-assist worker` process.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merge_assist.bot.embedded import BackgroundServer
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Secret, Settings
from gitlab_sim import Simulator
from gitlab_sim.sample import Team, make_team
from gitlab_sim.state import MAINTAINER, User
from merge_assist.rules.model import EntryState, QueueEntry
from merge_assist.storage import Store, migrate
from tests.helpers import cli, free_port, http_ok, start_cli, wait_for

WEBHOOK_SECRET = "e2e-webhook-secret"
PIPELINE_SECONDS = 600.0
"""How long the pipelines of the tests run, on the simulator's virtual clock."""


@dataclass
class World(Team):
    """The sample team, with shortcuts for what the tests do as its people."""

    def mr(self, branch: str, author: User | None = None, target: str | None = None, **kwargs: Any) -> int:
        mr = self.sim.create_merge_request(self.project, branch, target, author=author or self.dev,
                                           files={f"{branch}.txt": f"{branch}\n"}, **kwargs)
        return mr.iid

    def comment(self, iid: int, user: User, body: str) -> int:
        return self.sim.post_note(self.project, iid, user, body).id

    def state(self, iid: int) -> str:
        return self.sim.merge_request(self.project, iid).state

    def notes(self, iid: int) -> list[str]:
        mr = self.sim.merge_request(self.project, iid)
        with self.sim.state.lock:
            return [n.body for n in self.sim.state.notes.values() if n.mr_id == mr.id and n.author_id == self.bot.id]

    def pipelines_of(self, iid: int):  # type: ignore[no-untyped-def]
        mr = self.sim.merge_request(self.project, iid)
        return self.sim.pipelines(self.project, ref=mr.source_branch)


def finish_pipelines(world: World) -> None:
    """Let the running pipelines finish: move the simulator's virtual clock past their end."""
    world.sim.clock.advance(PIPELINE_SECONDS + 60)


def make_world(sim: Simulator, merge_method: str = "merge") -> World:
    return World(**vars(make_team(sim, merge_method=merge_method)))


@dataclass
class Bot:
    """A running bot; `store` reads the same database for assertions."""

    mode: str
    url: str
    store: Store
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    server: BackgroundServer | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None

    def entries(self, iid: int, project_id: int) -> list[QueueEntry]:
        return [e for e in self.store.queue.all_entries() if e.mr_iid == iid and e.project_id == project_id]

    def entry(self, iid: int, project_id: int) -> QueueEntry | None:
        entries = self.entries(iid, project_id)
        return entries[0] if entries else None

    def wait_state(self, world: World, iid: int, state: EntryState, timeout: float = 60.0) -> QueueEntry:
        def reached() -> QueueEntry | None:
            entry = self.entry(iid, world.project.id)
            return entry if entry is not None and entry.state is state else None

        return wait_for(reached, timeout=timeout, message=f"!{iid} to reach {state.value}")  # type: ignore[return-value]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.runtime.stop()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.store.db.dispose()


def bot_settings(sim: Simulator, world: World, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=database_url, gitlab_url=sim.url, gitlab_token=Secret(world.bot.token),
        webhook_secret=Secret(WEBHOOK_SECRET), recheck_seconds=1.0, lease_seconds=5.0,
    )
    values.update(overrides)
    return Settings(**values)


def start_embedded(sim: Simulator, world: World, database_url: str, **overrides: Any) -> Bot:
    runtime = Runtime.build(bot_settings(sim, world, database_url, **overrides), run_workers=True)
    server = BackgroundServer(runtime).start()
    sim.add_hook(world.project, f"{server.url}/webhooks/gitlab", WEBHOOK_SECRET)
    return Bot("embedded", server.url, runtime.store, server=server)


def embedded_env(sim: Simulator, world: World, database_url: str) -> dict[str, str]:
    """The environment of `merge-assist serve` on its own: SQLite, in-process queue and workers."""
    return {
        "MERGE_ASSIST_DATABASE_URL": database_url, "MERGE_ASSIST_GITLAB_URL": sim.url,
        "MERGE_ASSIST_GITLAB_TOKEN": world.bot.token, "MERGE_ASSIST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MERGE_ASSIST_RECHECK_SECONDS": "1", "MERGE_ASSIST_LEASE_SECONDS": "5",
        "MERGE_ASSIST_JWT_SECRET": "e2e-jwt-secret-" + "x" * 32,
    }


def production_env(sim: Simulator, world: World, database_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {**embedded_env(sim, world, database_url), "MERGE_ASSIST_REDIS_URL": redis_url,
            "MERGE_ASSIST_REDIS_PREFIX": prefix, "MERGE_ASSIST_QUEUE_RECLAIM_SECONDS": "1"}


def start_worker(bot: Bot, log_name: str = "worker.log", extra_env: dict[str, str] | None = None,
                 ) -> subprocess.Popen[bytes]:
    assert bot.workdir is not None
    env = {**bot.env, **(extra_env or {})}
    # Crash tests run the worker through a test-only entry point that installs the failpoint.
    module = "tests.e2e.failpoint_worker" if "MERGE_ASSIST_FAILPOINT" in env else "merge_assist.bot.cli"
    process = start_cli(["worker"], cwd=bot.workdir, env=env, log_path=bot.workdir / log_name, module=module)
    bot.processes.append(process)
    return process


def start_production(sim: Simulator, world: World, database_url: str, redis_url: str, prefix: str,
                     workdir: Path, worker_env: dict[str, str] | None = None,
                     extra_env: dict[str, str] | None = None) -> Bot:
    """`extra_env` applies to every process (and to workers started later with `start_worker`)."""
    env = {**production_env(sim, world, database_url, redis_url, prefix), **(extra_env or {})}
    migrated = cli(["migrate"], workdir, env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    serve = start_cli(["serve", "--port", str(port)], cwd=workdir, env=env, log_path=workdir / "serve.log")
    url = f"http://127.0.0.1:{port}"
    bot = Bot("production", url, Store.open(database_url), processes=[serve], env=env, workdir=workdir)
    start_worker(bot, extra_env=worker_env)
    wait_for(lambda: http_ok(f"{url}/readyz"), timeout=30, message="serve /readyz")
    sim.add_hook(world.project, f"{url}/webhooks/gitlab", WEBHOOK_SECRET)
    return bot


def logs(bot: Bot) -> str:
    if bot.workdir is None:
        return ""
    return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(bot.workdir.glob("*.log")))


__all__ = ["Bot", "World", "make_world", "start_embedded", "start_production", "start_worker", "logs", "embedded_env",
           "migrate", "os", "EntryState", "MAINTAINER"]
