"""REST API v4 JSON shapes (field names and types as GitLab returns them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import mergeability
from .state import AwardEmoji, Job, MergeRequest, Note, Pipeline, Project, User
from .timefmt import iso_time

if TYPE_CHECKING:
    from .backend import Backend

JSON = dict[str, Any]


def user_basic(backend: Backend, user: User) -> JSON:
    return {"id": user.id, "username": user.username, "name": user.name, "state": user.state,
            "locked": False, "avatar_url": None, "web_url": backend.user_web_url(user)}


def user_full(backend: Backend, user: User) -> JSON:
    return {**user_basic(backend, user), "email": user.email, "public_email": user.email,
            "is_admin": user.is_admin, "bot": False, "created_at": iso_time(0)}


def user_by_id(backend: Backend, user_id: int | None) -> JSON | None:
    user = backend.state.users.get(user_id) if user_id is not None else None
    return user_basic(backend, user) if user else None


def member(backend: Backend, user: User, access_level: int) -> JSON:
    return {**user_basic(backend, user), "access_level": access_level, "expires_at": None,
            "created_at": iso_time(0), "membership_state": "active"}


def project(backend: Backend, proj: Project, viewer: User | None = None) -> JSON:
    group = backend.state.groups[proj.group_id]
    web_url = backend.web_url(proj)
    direct = proj.members.get(viewer.id) if viewer else None
    inherited = group.members.get(viewer.id) if viewer else None
    return {
        "id": proj.id, "name": proj.name, "path": proj.path, "description": "",
        "name_with_namespace": f"{group.name} / {proj.name}",
        "path_with_namespace": proj.path_with_namespace,
        "namespace": {"id": group.id, "name": group.name, "path": group.path, "kind": "group",
                      "full_path": group.path, "parent_id": None,
                      "web_url": f"{backend.base_url}/groups/{group.path}"},
        "default_branch": proj.default_branch, "visibility": proj.visibility, "archived": False,
        "web_url": web_url, "http_url_to_repo": f"{web_url}.git",
        "ssh_url_to_repo": f"git@127.0.0.1:{proj.path_with_namespace}.git",
        "created_at": iso_time(proj.created_at), "last_activity_at": iso_time(proj.created_at),
        "merge_method": proj.merge_method,
        "merge_requests_enabled": True, "jobs_enabled": True,
        "only_allow_merge_if_pipeline_succeeds": proj.only_allow_merge_if_pipeline_succeeds,
        "allow_merge_on_skipped_pipeline": proj.allow_merge_on_skipped_pipeline,
        "only_allow_merge_if_all_discussions_are_resolved":
            proj.only_allow_merge_if_all_discussions_are_resolved,
        "remove_source_branch_after_merge": proj.remove_source_branch_after_merge,
        "squash_option": proj.squash_option, "approvals_before_merge": proj.approvals_required,
        "permissions": {
            "project_access": {"access_level": direct, "notification_level": 3} if direct else None,
            "group_access": {"access_level": inherited, "notification_level": 3} if inherited else None,
        },
    }


def commit(backend: Backend, proj: Project, sha: str) -> JSON:
    info = backend.repo(proj).commit_info(sha)
    return {
        "id": info.sha, "short_id": info.sha[:8], "title": info.title, "message": info.message,
        "author_name": info.author_name, "author_email": info.author_email,
        "authored_date": iso_time(info.authored_at), "committer_name": info.committer_name,
        "committer_email": info.committer_email, "committed_date": iso_time(info.committed_at),
        "created_at": iso_time(info.committed_at), "parent_ids": list(info.parents),
        "web_url": f"{backend.web_url(proj)}/-/commit/{info.sha}",
    }


def commit_detail(backend: Backend, proj: Project, sha: str) -> JSON:
    """``GET /repository/commits/:sha``: the commit plus stats and its latest pipeline.
    Like GitLab, no tree id: clients compare trees with git."""
    numstat = backend.repo(proj).out("diff-tree", "--root", "--no-commit-id", "-r", "--numstat",
                                     "-m", "--first-parent", sha)
    counts = [line.split("\t")[:2] for line in numstat.splitlines() if line]
    additions = sum(int(a) for a, _ in counts if a.isdigit())
    deletions = sum(int(d) for _, d in counts if d.isdigit())
    with backend.state.lock:
        pipelines = [p for p in backend.state.pipelines.values()
                     if p.project_id == proj.id and p.sha == sha]
    last = max(pipelines, key=lambda p: p.id, default=None)
    return {**commit(backend, proj, sha), "project_id": proj.id, "trailers": {},
            "stats": {"additions": additions, "deletions": deletions, "total": additions + deletions},
            "status": last.status if last else None,
            "last_pipeline": pipeline_basic(backend, last) if last else None}


def branch(backend: Backend, proj: Project, name: str, sha: str, viewer: User) -> JSON:
    protected = proj.protected_branches.get(name)
    return {
        "name": name, "merged": False, "protected": protected is not None,
        "default": name == proj.default_branch,
        "developers_can_push": protected is None or protected.push_access_level <= 30,
        "developers_can_merge": protected is None or protected.merge_access_level <= 30,
        "can_push": mergeability.can_push_to(backend.state, proj, viewer, name),
        "web_url": f"{backend.web_url(proj)}/-/tree/{name}",
        "commit": commit(backend, proj, sha),
    }


def pipeline_basic(backend: Backend, pipe: Pipeline) -> JSON:
    proj = backend.state.projects[pipe.project_id]
    return {"id": pipe.id, "iid": pipe.iid, "project_id": pipe.project_id, "sha": pipe.sha,
            "ref": pipe.ref, "status": pipe.status, "source": pipe.source,
            "created_at": iso_time(pipe.created_at), "updated_at": iso_time(pipe.updated_at),
            "web_url": f"{backend.web_url(proj)}/-/pipelines/{pipe.id}"}


def pipeline_full(backend: Backend, pipe: Pipeline) -> JSON:
    return {
        **pipeline_basic(backend, pipe), "before_sha": pipe.before_sha, "tag": False,
        "yaml_errors": None, "user": user_by_id(backend, pipe.user_id),
        "started_at": iso_time(pipe.started_at), "finished_at": iso_time(pipe.finished_at),
        "committed_at": None, "duration": pipeline_duration(pipe),
        "queued_duration": queued_duration(pipe), "coverage": None,
        "detailed_status": detailed_status(pipe.status),
    }


def pipeline_duration(pipe: Pipeline) -> int | None:
    if pipe.started_at is None or pipe.finished_at is None:
        return None
    return int(pipe.finished_at - pipe.started_at)


def queued_duration(pipe: Pipeline) -> int | None:
    return None if pipe.started_at is None else int(pipe.started_at - pipe.created_at)


def detailed_status(status: str) -> JSON:
    return {"icon": f"status_{status}", "text": status, "label": status, "group": status,
            "tooltip": status, "has_details": True, "details_path": None}


def job(backend: Backend, pipe: Pipeline, item: Job) -> JSON:
    proj = backend.state.projects[pipe.project_id]
    duration = (item.finished_at - item.started_at) if item.started_at and item.finished_at else None
    return {
        "id": item.id, "name": item.name, "stage": item.stage, "status": item.status,
        "ref": pipe.ref, "tag": False, "allow_failure": False, "coverage": None,
        "created_at": iso_time(item.created_at), "started_at": iso_time(item.started_at),
        "finished_at": iso_time(item.finished_at), "duration": duration,
        "queued_duration": None, "failure_reason": item.failure_reason,
        "user": user_by_id(backend, pipe.user_id),
        "commit": {"id": pipe.sha, "short_id": pipe.sha[:8]},
        "pipeline": {"id": pipe.id, "project_id": pipe.project_id, "ref": pipe.ref,
                     "sha": pipe.sha, "status": pipe.status},
        "web_url": f"{backend.web_url(proj)}/-/jobs/{item.id}",
    }


def award(backend: Backend, emoji: AwardEmoji, awardable_id: int, awardable_type: str) -> JSON:
    return {"id": emoji.id, "name": emoji.name, "user": user_by_id(backend, emoji.user_id),
            "created_at": iso_time(emoji.created_at), "updated_at": iso_time(emoji.created_at),
            "awardable_id": awardable_id, "awardable_type": awardable_type}


def note(backend: Backend, item: Note) -> JSON:
    mr = backend.state.merge_requests[item.mr_id]
    return {
        "id": item.id, "type": "DiscussionNote" if item.resolvable else None, "body": item.body,
        "attachment": None, "author": user_by_id(backend, item.author_id),
        "created_at": iso_time(item.created_at), "updated_at": iso_time(item.updated_at),
        "system": item.system, "noteable_id": mr.id, "noteable_type": "MergeRequest",
        "noteable_iid": mr.iid, "project_id": mr.project_id, "resolvable": item.resolvable,
        "resolved": item.resolved if item.resolvable else None,
        "resolved_by": user_by_id(backend, item.resolved_by_id), "confidential": False,
        "internal": False,
    }


def discussion(backend: Backend, discussion_id: str, notes: list[Note]) -> JSON:
    return {"id": discussion_id, "individual_note": not notes[0].resolvable,
            "notes": [note(backend, n) for n in notes]}


def approvals(backend: Backend, mr: MergeRequest, viewer: User) -> JSON:
    state = backend.state
    proj = state.projects[mr.project_id]
    return {
        "id": mr.id, "iid": mr.iid, "project_id": mr.project_id, "title": mr.title,
        "state": mr.state, "merge_status": mergeability.merge_status(backend, mr),
        "approved": len(mr.approved_by) >= max(proj.approvals_required, 1),
        "approvals_required": proj.approvals_required,
        "approvals_left": mergeability.approvals_left(state, mr),
        "approved_by": [{"user": user_by_id(backend, uid), "approved_at": iso_time(at)}
                        for uid, at in mr.approved_by.items()],
        "user_has_approved": viewer.id in mr.approved_by,
        "user_can_approve": viewer.id not in mr.approved_by, "suggested_approvers": [],
        "approvers": [], "approver_groups": [], "require_password_to_approve": False,
    }


def merge_request(backend: Backend, mr: MergeRequest, viewer: User | None = None,
                  include_rebase_in_progress: bool = False) -> JSON:
    state = backend.state
    proj = state.projects[mr.project_id]
    git = mergeability.git_status(backend, mr) if mr.state == "opened" else None
    head = state.head_pipeline(mr)
    assignees = [user_by_id(backend, uid) for uid in mr.assignee_ids]
    data: JSON = {
        "id": mr.id, "iid": mr.iid, "project_id": mr.project_id, "title": mr.title,
        "description": mr.description, "state": mr.state,
        "created_at": iso_time(mr.created_at), "updated_at": iso_time(mr.updated_at),
        "merged_at": iso_time(mr.merged_at), "closed_at": iso_time(mr.closed_at),
        "merged_by": user_by_id(backend, mr.merged_by_id),
        "merge_user": user_by_id(backend, mr.merged_by_id or mr.merge_user_id),
        "closed_by": None, "target_branch": mr.target_branch, "source_branch": mr.source_branch,
        "source_project_id": mr.project_id, "target_project_id": mr.project_id,
        "author": user_by_id(backend, mr.author_id), "assignees": assignees,
        "assignee": assignees[0] if assignees else None,
        "reviewers": [user_by_id(backend, uid) for uid in mr.reviewer_ids],
        "upvotes": 0, "downvotes": 0, "labels": list(mr.labels), "milestone": None,
        "draft": mr.draft, "work_in_progress": mr.draft,
        "merge_when_pipeline_succeeds": mr.merge_when_pipeline_succeeds,
        "merge_status": mergeability.merge_status(backend, mr),
        "detailed_merge_status": mergeability.detailed_merge_status(backend, mr),
        "sha": mr.sha, "merge_commit_sha": mr.merge_commit_sha,
        "squash_commit_sha": mr.squash_commit_sha, "squash": mr.squash,
        "squash_on_merge": mr.squash,
        "diff_refs": {"base_sha": mr.base_sha, "head_sha": mr.sha, "start_sha": mr.start_sha},
        "head_pipeline": pipeline_full(backend, head) if head else None,
        "pipeline": pipeline_basic(backend, head) if head else None,
        "has_conflicts": bool(git and git.has_conflicts),
        "blocking_discussions_resolved": mergeability.blocking_discussions_resolved(state, mr),
        "user_notes_count": sum(1 for n in state.mr_notes(mr) if not n.system),
        "web_url": f"{backend.web_url(proj)}/-/merge_requests/{mr.iid}",
        "references": {"short": f"!{mr.iid}", "relative": f"!{mr.iid}",
                       "full": f"{proj.path_with_namespace}!{mr.iid}"},
        "merge_error": mr.merge_error,
        "should_remove_source_branch": mr.should_remove_source_branch,
        "force_remove_source_branch": mr.force_remove_source_branch,
        "approvals_before_merge": proj.approvals_required or None,
        "discussion_locked": None, "time_stats": {"time_estimate": 0, "total_time_spent": 0},
        "changes_count": None, "first_contribution": False,
    }
    if viewer is not None:
        data["user"] = {"can_merge": mergeability.can_merge_into(state, proj, viewer, mr.target_branch)}
    if include_rebase_in_progress:
        data["rebase_in_progress"] = mr.rebase_in_progress
    return data
