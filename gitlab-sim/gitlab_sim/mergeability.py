"""Whether a merge request can be merged, and by whom — GitLab's checks in GitLab's order.

``detailed_merge_status`` follows ``DetailedMergeStatusService``: non-CI checks first
(open, draft, conflict, rebase, discussions, approvals), CI last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .state import ADMIN_ACCESS, DEVELOPER, MergeRequest, Project, State, User

if TYPE_CHECKING:
    from .backend import Backend

IN_PROGRESS = frozenset({"created", "pending", "running", "waiting_for_resource", "preparing"})


@dataclass(frozen=True)
class GitStatus:
    has_conflicts: bool
    target_sha: str | None
    on_top_of_target: bool  # target head is an ancestor of the source head


_git_cache: dict[tuple[str, str, str], tuple[bool, bool]] = {}


def git_status(backend: Backend, mr: MergeRequest) -> GitStatus:
    """Conflict and rebase state of the MR against its target's current head (cached by sha)."""
    project = backend.state.projects[mr.project_id]
    target_sha = backend.branch_head(project, mr.target_branch)
    if target_sha is None:
        return GitStatus(False, None, True)
    key = (str(backend.repo_path(project)), mr.sha, target_sha)
    if key not in _git_cache:
        repo = backend.repo(project)
        _git_cache[key] = (repo.has_conflicts(target_sha, mr.sha), repo.is_ancestor(target_sha, mr.sha))
    conflicts, on_top = _git_cache[key]
    return GitStatus(conflicts, target_sha, on_top)


def effective_access(state: State, project: Project, user: User) -> int:
    return ADMIN_ACCESS if user.is_admin else state.access_level(project, user)


def can_merge_into(state: State, project: Project, user: User, branch: str) -> bool:
    """The token user may merge into ``branch`` (protected branch rule or Developer)."""
    protected = project.protected_branches.get(branch)
    required = protected.merge_access_level if protected else DEVELOPER
    return effective_access(state, project, user) >= required


def can_push_to(state: State, project: Project, user: User, branch: str) -> bool:
    protected = project.protected_branches.get(branch)
    required = protected.push_access_level if protected else DEVELOPER
    return effective_access(state, project, user) >= required


def blocking_discussions_resolved(state: State, mr: MergeRequest) -> bool:
    project = state.projects[mr.project_id]
    if not project.only_allow_merge_if_all_discussions_are_resolved:
        return True
    return all(n.resolved for n in state.mr_notes(mr) if n.resolvable)


def approvals_left(state: State, mr: MergeRequest) -> int:
    project = state.projects[mr.project_id]
    return max(project.approvals_required - len(mr.approved_by), 0)


def ci_status(backend: Backend, mr: MergeRequest) -> str | None:
    """None when CI allows merging, else ``ci_still_running`` or ``ci_must_pass``."""
    project = backend.state.projects[mr.project_id]
    if not project.only_allow_merge_if_pipeline_succeeds:
        return None
    pipeline = backend.state.head_pipeline(mr)
    if pipeline is None:
        return "ci_must_pass"
    if pipeline.status in IN_PROGRESS:
        return "ci_still_running"
    if pipeline.status == "success":
        return None
    if pipeline.status == "skipped" and project.allow_merge_on_skipped_pipeline:
        return None
    return "ci_must_pass"


def needs_rebase(backend: Backend, mr: MergeRequest) -> bool:
    project = backend.state.projects[mr.project_id]
    return project.merge_method in {"ff", "rebase_merge"} and not git_status(backend, mr).on_top_of_target


def blocking_checks(backend: Backend, mr: MergeRequest, *, include_ci: bool = True) -> list[str]:
    """Every failing check identifier, in GitLab's order (empty list = mergeable)."""
    state = backend.state
    failing: list[str] = []
    if mr.state != "opened":
        return ["not_open"]
    if mr.draft:
        failing.append("draft_status")
    if git_status(backend, mr).has_conflicts:
        failing.append("conflict")
    if needs_rebase(backend, mr):
        failing.append("need_rebase")
    if not blocking_discussions_resolved(state, mr):
        failing.append("discussions_not_resolved")
    if approvals_left(state, mr) > 0:
        failing.append("not_approved")
    if include_ci:
        ci = ci_status(backend, mr)
        if ci:
            failing.append(ci)
    return failing


def detailed_merge_status(backend: Backend, mr: MergeRequest) -> str:
    failing = blocking_checks(backend, mr)
    return failing[0] if failing else "mergeable"


def merge_status(backend: Backend, mr: MergeRequest) -> str:
    """The deprecated ``merge_status`` field: only reflects git mergeability."""
    if mr.state != "opened":
        return "can_be_merged" if mr.state == "merged" else "cannot_be_merged"
    return "cannot_be_merged" if git_status(backend, mr).has_conflicts else "can_be_merged"
