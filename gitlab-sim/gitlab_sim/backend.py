"""The simulator's shared core: state, clock, repositories, CI runner and webhooks.

Operations (``mr_ops``, ``conversation``, ``pushes``) and the HTTP layer receive a
``Backend`` and work through it, so the driver API and the REST API share one code path.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .clock import SimClock
from .git import GitRepo
from .hook_payloads import job_payload, pipeline_payload
from .pipelines import PipelineRunner
from . import receive_hooks
from .state import Job, Pipeline, Project, State, User
from .webhooks import WebhookDispatcher, WebhookSettings


class Backend:
    """Everything the operations need, wired together once per simulator."""

    def __init__(self, root: Path, clock: SimClock, *, runner_capacity: int | None = None,
                 rebase_delay: float = 0.05, webhook_settings: WebhookSettings | None = None) -> None:
        self.root = root
        self.repos_root = root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.git_hooks_dir = receive_hooks.install(root / "git-hooks")
        self.state = State()
        self.clock = clock
        self.base_url = "http://127.0.0.1"
        self.rebase_delay = rebase_delay
        self.response_delay = 0.0  # seconds every REST answer waits (see api/delay.py)
        self.dispatcher = WebhookDispatcher(webhook_settings)
        self.runner = PipelineRunner(self.state, clock, self, capacity=runner_capacity)
        self._heads: dict[int, dict[str, str]] = {}
        self._event_uuid: str | None = None
        # Set by mr_ops to react to pipeline results (auto-merge); avoids an import cycle.
        self.on_pipeline_finished: list[Any] = []

    # -- repositories ---------------------------------------------------------
    def repo_path(self, project: Project) -> Path:
        return self.repos_root / f"{project.path_with_namespace}.git"

    def repo(self, project: Project) -> GitRepo:
        return GitRepo(self.repo_path(project))

    def heads(self, project: Project) -> dict[str, str]:
        """Branch heads, cached until ``refs_changed``."""
        with self.state.lock:
            cached = self._heads.get(project.id)
            if cached is None:
                cached = self.repo(project).branches()
                self._heads[project.id] = cached
            return dict(cached)

    def branch_head(self, project: Project, branch: str) -> str | None:
        return self.heads(project).get(branch)

    def refs_changed(self, project: Project) -> None:
        with self.state.lock:
            self._heads.pop(project.id, None)

    # -- urls -------------------------------------------------------------------
    def web_url(self, project: Project) -> str:
        return f"{self.base_url}/{project.path_with_namespace}"

    def user_web_url(self, user: User) -> str:
        return f"{self.base_url}/{user.username}"

    # -- webhooks ---------------------------------------------------------------
    def emit(self, project: Project, event: str,
             payload: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Queue ``payload`` for every hook of ``project`` subscribed to ``event``.

        ``payload`` may be a builder, called only if some hook wants the event (building
        reads git, which would slow thousands of unobserved pipeline transitions).
        """
        with self.state.lock:
            hooks = [h for h in self.state.hooks.values()
                     if h.project_id == project.id and event in h.events]
            if not hooks:
                return
            body = payload() if callable(payload) else payload
        for hook in hooks:
            self.dispatcher.enqueue(hook.id, hook.url, hook.token, event, body,
                                    event_uuid=self._event_uuid or str(uuid.uuid4()))

    # -- PipelineListener -------------------------------------------------------
    def pipeline_changed(self, pipeline: Pipeline) -> None:
        project = self.state.projects[pipeline.project_id]
        self.emit(project, "pipeline", lambda: pipeline_payload(self, pipeline))
        if pipeline.status in {"success", "failed", "canceled", "skipped"}:
            for callback in self.on_pipeline_finished:
                callback(pipeline)

    def job_changed(self, pipeline: Pipeline, job: Job) -> None:
        if job.status == "pending":
            return
        project = self.state.projects[pipeline.project_id]
        self.emit(project, "job", lambda: job_payload(self, pipeline, job))

    def stop(self) -> None:
        self.clock.stop()
        self.dispatcher.stop()
