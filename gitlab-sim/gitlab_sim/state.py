"""In-memory model of the simulated GitLab instance.

Plain dataclasses plus one ``State`` holding them and handing out ids. All reads and
writes happen under ``State.lock`` (an ``RLock``): the HTTP server, the clock thread,
the rebase workers and the test thread all touch the same objects.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ADMIN_ACCESS = 60


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str
    token: str
    is_admin: bool = False
    state: str = "active"


@dataclass
class Group:
    id: int
    path: str
    name: str
    members: dict[int, int] = field(default_factory=dict)  # user id -> access level


@dataclass
class ProtectedBranch:
    id: int
    name: str
    merge_access_level: int
    push_access_level: int
    allow_force_push: bool = False


@dataclass
class Project:
    id: int
    name: str
    path: str
    group_id: int
    namespace_path: str
    default_branch: str
    created_at: float
    merge_method: str = "merge"  # merge | rebase_merge | ff
    only_allow_merge_if_pipeline_succeeds: bool = True
    allow_merge_on_skipped_pipeline: bool = False
    only_allow_merge_if_all_discussions_are_resolved: bool = False
    squash_option: str = "default_off"
    approvals_required: int = 0
    remove_source_branch_after_merge: bool = True
    merge_request_pipelines: bool = False  # also run a merge_request_event pipeline per MR push
    visibility: str = "private"  # private | internal | public
    members: dict[int, int] = field(default_factory=dict)
    protected_branches: dict[str, ProtectedBranch] = field(default_factory=dict)
    next_mr_iid: int = 1
    next_pipeline_iid: int = 1

    @property
    def path_with_namespace(self) -> str:
        return f"{self.namespace_path}/{self.path}"


@dataclass
class AwardEmoji:
    id: int
    name: str
    user_id: int
    created_at: float


@dataclass
class Note:
    id: int
    mr_id: int
    body: str
    author_id: int
    created_at: float
    updated_at: float
    discussion_id: str
    system: bool = False
    resolvable: bool = False
    resolved: bool = False
    resolved_by_id: int | None = None
    award_emoji: list[AwardEmoji] = field(default_factory=list)


@dataclass
class MergeRequest:
    id: int
    iid: int
    project_id: int
    title: str
    description: str
    author_id: int
    source_branch: str
    target_branch: str
    sha: str
    created_at: float
    updated_at: float
    state: str = "opened"  # opened | closed | merged | locked
    draft: bool = False
    labels: list[str] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    reviewer_ids: list[int] = field(default_factory=list)
    merged_at: float | None = None
    merged_by_id: int | None = None
    closed_at: float | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    squash: bool = False
    merge_when_pipeline_succeeds: bool = False
    merge_user_id: int | None = None
    merge_params: dict[str, Any] = field(default_factory=dict)
    merge_error: str | None = None
    rebase_in_progress: bool = False
    should_remove_source_branch: bool | None = None
    force_remove_source_branch: bool = False
    approved_by: dict[int, float] = field(default_factory=dict)
    note_ids: list[int] = field(default_factory=list)
    award_emoji: list[AwardEmoji] = field(default_factory=list)
    base_sha: str | None = None
    start_sha: str | None = None


@dataclass
class Job:
    id: int
    pipeline_id: int
    name: str
    stage: str
    created_at: float
    status: str = "created"
    started_at: float | None = None
    finished_at: float | None = None
    failure_reason: str | None = None


@dataclass
class Pipeline:
    id: int
    iid: int
    project_id: int
    ref: str
    sha: str
    before_sha: str
    source: str
    user_id: int | None
    created_at: float
    updated_at: float
    status: str = "created"
    started_at: float | None = None
    finished_at: float | None = None
    jobs: list[Job] = field(default_factory=list)
    generation: int = 0  # bumped on retry/cancel so stale timed events become no-ops
    mr_iid: int | None = None


@dataclass
class Hook:
    id: int
    project_id: int
    url: str
    token: str | None
    events: set[str]
    created_at: float


@dataclass
class RequestRecord:
    kind: str  # api | git
    method: str
    path: str
    query: str
    status: int
    user_id: int | None
    username: str | None
    timestamp: float
    duration: float


class State:
    """Every simulated object, keyed by global id, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ids: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self.users: dict[int, User] = {}
        self.groups: dict[int, Group] = {}
        self.projects: dict[int, Project] = {}
        self.merge_requests: dict[int, MergeRequest] = {}
        self.notes: dict[int, Note] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.jobs: dict[int, Job] = {}
        self.hooks: dict[int, Hook] = {}
        self.requests: list[RequestRecord] = []

    def next_id(self, kind: str) -> int:
        with self.lock:
            return next(self._ids[kind])

    # -- lookups ------------------------------------------------------------
    def user_by_token(self, token: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.token == token), None)

    def group_by_path(self, path: str) -> Group | None:
        with self.lock:
            return next((g for g in self.groups.values() if g.path == path), None)

    def project_by_path(self, path_with_namespace: str) -> Project | None:
        with self.lock:
            return next((p for p in self.projects.values()
                         if p.path_with_namespace == path_with_namespace), None)

    def merge_request(self, project_id: int, iid: int) -> MergeRequest | None:
        with self.lock:
            return next((m for m in self.merge_requests.values()
                         if m.project_id == project_id and m.iid == iid), None)

    def project_merge_requests(self, project_id: int) -> list[MergeRequest]:
        with self.lock:
            return [m for m in self.merge_requests.values() if m.project_id == project_id]

    def open_mrs_for_branch(self, project_id: int, source_branch: str) -> list[MergeRequest]:
        with self.lock:
            return [m for m in self.project_merge_requests(project_id)
                    if m.state == "opened" and m.source_branch == source_branch]

    def access_level(self, project: Project, user: User) -> int:
        """Effective level: the highest of direct and group-inherited membership (0 if none)."""
        with self.lock:
            group = self.groups.get(project.group_id)
            inherited = group.members.get(user.id, 0) if group else 0
            return max(project.members.get(user.id, 0), inherited)

    def head_pipeline(self, mr: MergeRequest) -> Pipeline | None:
        """Latest pipeline for the MR's current head commit on its source branch."""
        with self.lock:
            matching = [p for p in self.pipelines.values()
                        if p.project_id == mr.project_id and p.sha == mr.sha
                        and p.ref in (mr.source_branch, f"refs/merge-requests/{mr.iid}/head")]
            return max(matching, key=lambda p: p.id, default=None)

    def mr_notes(self, mr: MergeRequest) -> list[Note]:
        with self.lock:
            return [self.notes[i] for i in mr.note_ids]
