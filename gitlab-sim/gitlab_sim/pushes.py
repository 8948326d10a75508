"""What happens when a branch moves — by API commit, merge, rebase or ``git push``.

GitLab's ``PostReceive``: a Push Hook, a pipeline for the new head, and every open
MR from that branch picks up the new sha (Merge Request Hook ``update`` with
``oldrev``; auto-merge is aborted because the approved code changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hook_payloads import merge_request_payload, push_payload
from .state import MergeRequest, Project, User

if TYPE_CHECKING:
    from .backend import Backend

ZERO_SHA = "0" * 40


def branch_updated(backend: Backend, project: Project, branch: str, before: str | None,
                   after: str | None, user: User, *, skip_ci: bool = False) -> None:
    """React to ``branch`` moving from ``before`` to ``after`` (None = absent)."""
    state = backend.state
    with state.lock:
        backend.refs_changed(project)
        backend.emit(project, "push",
                     push_payload(backend, project, user, branch, before or ZERO_SHA, after or ZERO_SHA))
        if after is None:
            return
        mrs = state.open_mrs_for_branch(project.id, branch)
        updates = [(mr, _move_head(backend, project, mr, after)) for mr in mrs if mr.sha != after]
        if not skip_ci:
            backend.runner.create(project.id, branch, after, before or ZERO_SHA, "push", user.id)
            if project.merge_request_pipelines:
                for mr in mrs:
                    backend.runner.create(project.id, f"refs/merge-requests/{mr.iid}/head", after,
                                          before or ZERO_SHA, "merge_request_event", user.id, mr.iid)
        for mr, (oldrev, changes) in updates:
            backend.emit(project, "merge_request",
                         merge_request_payload(backend, mr, user, "update", changes, oldrev=oldrev))


def _move_head(backend: Backend, project: Project, mr: MergeRequest,
               after: str) -> tuple[str, dict[str, Any]]:
    """Point the MR at its branch's new head; returns (oldrev, changes for the hook)."""
    oldrev = mr.sha
    mr.sha = after
    mr.updated_at = backend.clock.now()
    mr.merge_error = None
    target = backend.branch_head(project, mr.target_branch)
    mr.start_sha = target
    mr.base_sha = backend.repo(project).merge_base(target, after) if target else None
    changes: dict[str, Any] = {}
    if mr.merge_when_pipeline_succeeds:
        mr.merge_when_pipeline_succeeds = False
        changes["merge_when_pipeline_succeeds"] = {"previous": True, "current": False}
    return oldrev, changes
