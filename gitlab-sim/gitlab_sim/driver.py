"""``Simulator``: the Python API tests, demos and benchmarks use to run and script GitLab.

Everything a human would do in GitLab's UI (create projects, push, comment, approve,
finish a pipeline) is a method here; everything a bot does goes over HTTP. Both end
up in the same operations, so both fire the same webhooks.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import uvicorn

from . import conversation, mr_ops
from . import serializers as ser
from .api.app import build_app
from .backend import Backend
from .clock import SimClock
from .faults import FaultInjector
from .git import SYSTEM_IDENTITY, GitRepo, Identity
from .pipelines import PipelinePlan, PipelineRequest, Resolver
from .pushes import branch_updated
from .state import (DEVELOPER, MAINTAINER, Group, Hook, MergeRequest, Note, Pipeline, Project,
                    ProtectedBranch, RequestRecord, User)
from .waiting import wait_for
from .webhooks import Delivery, DeliveryAttempt, WebhookSettings

ALL_HOOK_EVENTS = ("push", "merge_request", "note", "pipeline", "job")


class Simulator:
    """A GitLab stand-in with real git repositories under ``root_dir``."""

    def __init__(self, root_dir: str | Path, clock: SimClock | None = None, *,
                 runner_capacity: int | None = None, rebase_delay: float = 0.05,
                 webhook_settings: WebhookSettings | None = None) -> None:
        self.clock = clock or SimClock.real_time()
        self.backend = Backend(Path(root_dir), self.clock, runner_capacity=runner_capacity,
                               rebase_delay=rebase_delay, webhook_settings=webhook_settings)
        self.backend.on_pipeline_finished.append(lambda p: mr_ops.pipeline_finished(self.backend, p))
        self.state = self.backend.state
        self.faults = FaultInjector()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- server -------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        config = uvicorn.Config(build_app(self.backend, self.faults), host=host, port=port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="gitlab-sim-http", daemon=True)
        self._thread.start()
        self.wait_for(lambda: self._server is not None and self._server.started, timeout=10)
        bound_port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{host}:{bound_port}"
        self.backend.base_url = self.url
        self.backend.dispatcher.settings.instance_url = self.url
        self.clock.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.backend.stop()

    def __enter__(self) -> Simulator:
        return self.start() if not self.url else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- people and projects ----------------------------------------------------------
    def create_user(self, username: str, name: str | None = None, is_admin: bool = False,
                    email: str | None = None) -> User:
        with self.state.lock:
            user = User(self.state.next_id("user"), username, name or username.title(),
                        email or f"{username}@example.com", f"glpat-{secrets.token_hex(10)}", is_admin)
            self.state.users[user.id] = user
            return user

    def create_group(self, path: str, name: str | None = None) -> Group:
        with self.state.lock:
            existing = self.state.group_by_path(path)
            if existing:
                return existing
            group = Group(self.state.next_id("namespace"), path, name or path.replace("-", " ").title())
            self.state.groups[group.id] = group
            return group

    def add_member(self, target: Project | Group, user: User, access_level: int = DEVELOPER) -> None:
        with self.state.lock:
            target.members[user.id] = access_level

    def create_project(self, path_with_namespace: str, default_branch: str = "main",
                       merge_method: str = "merge", files: dict[str, str] | None = None,
                       only_allow_merge_if_pipeline_succeeds: bool = True, **settings: Any) -> Project:
        """Create a project (and its group) with one initial commit on ``default_branch``.

        ``settings``: any other ``Project`` field, e.g. ``allow_merge_on_skipped_pipeline``,
        ``only_allow_merge_if_all_discussions_are_resolved``, ``approvals_required``,
        ``merge_request_pipelines``, ``squash_option``.
        """
        namespace, _, path = path_with_namespace.rpartition("/")
        if not namespace:
            raise ValueError("path_with_namespace needs a group, e.g. 'group/project'")
        group = self.create_group(namespace)
        with self.state.lock:
            project = Project(self.state.next_id("project"), path, path, group.id, group.path,
                              default_branch, self.clock.now(), merge_method=merge_method,
                              only_allow_merge_if_pipeline_succeeds=only_allow_merge_if_pipeline_succeeds,
                              **settings)
            repo = GitRepo.create(self.backend.repo_path(project), default_branch)
            sha = repo.write_commit(None, files or {"README.md": f"# {path}\n"}, "Initial commit\n",
                                    SYSTEM_IDENTITY)
            repo.set_branch(default_branch, sha)
            self.state.projects[project.id] = project
            return project

    def protect_branch(self, project: Project, name: str, merge_access_level: int = MAINTAINER,
                       push_access_level: int = MAINTAINER, allow_force_push: bool = False) -> ProtectedBranch:
        with self.state.lock:
            rule = ProtectedBranch(self.state.next_id("protected_branch"), name, merge_access_level,
                                   push_access_level, allow_force_push)
            project.protected_branches[name] = rule
            return rule

    # -- git ----------------------------------------------------------------------------
    def commit(self, project: Project, branch: str, files: dict[str, str | None],
               message: str = "Update files", author: User | None = None,
               start_branch: str | None = None) -> str:
        """Commit ``files`` on ``branch`` (created from ``start_branch``/default) as a push."""
        user = author or self._any_user()
        with self.state.lock:
            before = self.backend.branch_head(project, branch)
            parent = before or self.backend.branch_head(project, start_branch or project.default_branch)
            repo = self.backend.repo(project)
            sha = repo.write_commit(parent, files, message.rstrip("\n") + "\n", Identity(user.name, user.email))
            repo.set_branch(branch, sha, expected_old=before)
            branch_updated(self.backend, project, branch, before, sha, user)
            return sha

    push_behind_bots_back = commit

    def branch_head(self, project: Project, branch: str) -> str | None:
        return self.backend.branch_head(project, branch)

    def repo(self, project: Project) -> GitRepo:
        return self.backend.repo(project)

    def clone_url(self, project: Project, user: User | None = None) -> str:
        host = self.url.removeprefix("http://")
        auth = f"oauth2:{user.token}@" if user else ""
        return f"http://{auth}{host}/{project.path_with_namespace}.git"

    # -- merge requests ------------------------------------------------------------------
    def create_merge_request(self, project: Project, source_branch: str, target_branch: str | None = None,
                             title: str | None = None, author: User | None = None, draft: bool = False,
                             labels: Iterable[str] = (), files: dict[str, str | None] | None = None,
                             assignees: Iterable[User] = (), description: str = "") -> MergeRequest:
        user = author or self._any_user()
        if files:
            self.commit(project, source_branch, files, f"Change for {source_branch}", user)
        return mr_ops.create(self.backend, project, user, source_branch,
                             target_branch or project.default_branch, title or f"Merge {source_branch}",
                             description, draft=draft, labels=list(labels),
                             assignee_ids=[u.id for u in assignees])

    def merge_request(self, project: Project, iid: int) -> MergeRequest:
        mr = self.state.merge_request(project.id, iid)
        if mr is None:
            raise KeyError(f"{project.path_with_namespace}!{iid}")
        return mr

    def mr_json(self, project: Project, iid: int, viewer: User | None = None) -> dict[str, Any]:
        """The MR exactly as ``GET /merge_requests/:iid`` would return it."""
        with self.state.lock:
            return ser.merge_request(self.backend, self.merge_request(project, iid), viewer, True)

    def update_merge_request(self, project: Project, iid: int, user: User | None = None,
                             **fields: Any) -> MergeRequest:
        mr = self.merge_request(project, iid)
        return mr_ops.update(self.backend, mr, user or self.state.users[mr.author_id], fields)

    def set_draft(self, project: Project, iid: int, draft: bool = True, user: User | None = None) -> MergeRequest:
        return self.update_merge_request(project, iid, user, draft=draft)

    def close_mr(self, project: Project, iid: int, user: User | None = None) -> MergeRequest:
        return self.update_merge_request(project, iid, user, state_event="close")

    def assign(self, project: Project, iid: int, users: Iterable[User], by: User | None = None) -> MergeRequest:
        return self.update_merge_request(project, iid, by, assignee_ids=[u.id for u in users])

    def approve(self, project: Project, iid: int, user: User) -> None:
        conversation.approve(self.backend, self.merge_request(project, iid), user)

    def post_note(self, project: Project, mr_iid: int, user: User, body: str) -> Note:
        return conversation.post_note(self.backend, self.merge_request(project, mr_iid), user, body)

    def edit_note(self, project: Project, mr_iid: int, note_id: int, user: User, body: str) -> Note:
        mr = self.merge_request(project, mr_iid)
        return conversation.edit_note(self.backend, mr, self.state.notes[note_id], user, body)

    def add_discussion(self, project: Project, iid: int, user: User, body: str,
                       resolvable: bool = True) -> Note:
        return conversation.post_note(self.backend, self.merge_request(project, iid), user, body,
                                      resolvable=resolvable)

    def resolve_discussion(self, project: Project, iid: int, discussion_id: str, user: User,
                           resolved: bool = True) -> None:
        conversation.resolve_discussion(self.backend, self.merge_request(project, iid), discussion_id,
                                        user, resolved)

    # -- CI -------------------------------------------------------------------------------
    def set_pipeline_plan(self, plan: Resolver | PipelinePlan) -> None:
        """A fixed plan for every pipeline, or a resolver ``(PipelineRequest) -> PipelinePlan``."""
        if isinstance(plan, PipelinePlan):
            fixed = plan
            self.backend.runner.resolver = lambda _request: fixed
        else:
            self.backend.runner.resolver = plan

    def set_runner_capacity(self, capacity: int | None) -> None:
        self.backend.runner.capacity = capacity

    def pipelines(self, project: Project | None = None, ref: str | None = None,
                  sha: str | None = None) -> list[Pipeline]:
        with self.state.lock:
            return sorted((p for p in self.state.pipelines.values()
                           if (project is None or p.project_id == project.id)
                           and ref in (None, p.ref) and sha in (None, p.sha)), key=lambda p: p.id)

    def finish_pipeline(self, pipeline_id: int, status: str = "success") -> None:
        self.backend.runner.finish(self.state.pipelines[pipeline_id], status)

    # -- webhooks ---------------------------------------------------------------------------
    def add_hook(self, project: Project, url: str, token: str | None = None,
                 events: Iterable[str] = ALL_HOOK_EVENTS) -> Hook:
        with self.state.lock:
            hook = Hook(self.state.next_id("hook"), project.id, url, token, set(events), self.clock.now())
            self.state.hooks[hook.id] = hook
            return hook

    def delivery_log(self) -> list[DeliveryAttempt]:
        return self.backend.dispatcher.attempts()

    def deliveries(self) -> list[Delivery]:
        return self.backend.dispatcher.deliveries()

    def resend_delivery(self, delivery_id: int) -> Delivery:
        return self.backend.dispatcher.resend(delivery_id)

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        return self.backend.dispatcher.wait_idle(timeout)

    # -- observation ----------------------------------------------------------------------
    def request_log(self, kind: str | None = None) -> list[RequestRecord]:
        with self.state.lock:
            return [r for r in self.state.requests if kind in (None, r.kind)]

    def reset_request_log(self) -> None:
        with self.state.lock:
            self.state.requests.clear()

    wait_for = staticmethod(wait_for)

    def _any_user(self) -> User:
        with self.state.lock:
            if not self.state.users:
                raise ValueError("create a user first")
            return next(iter(self.state.users.values()))


__all__ = ["Simulator", "SimClock", "PipelinePlan", "PipelineRequest", "WebhookSettings"]
