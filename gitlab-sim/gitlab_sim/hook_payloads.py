"""Webhook payload bodies shaped like GitLab's documented examples.

The REST API and webhooks differ in details that trip bots up: hook timestamps are
``YYYY-MM-DD HH:MM:SS UTC``, labels are objects (not strings), ``namespace`` is the
group's display name, and the pipeline's ``detailed_status`` is a string.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from . import mergeability
from .state import Job, MergeRequest, Pipeline, Project, User
from .timefmt import hook_time

if TYPE_CHECKING:
    from .backend import Backend

JSON = dict[str, Any]
STATE_IDS = {"opened": 1, "closed": 2, "merged": 3, "locked": 4}
PIPELINE_DETAILED_STATUS = {"success": "passed", "failed": "failed", "running": "running",
                            "pending": "pending", "canceled": "canceled", "skipped": "skipped",
                            "created": "created"}


def hook_user(backend: Backend, user: User | None) -> JSON | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.name, "username": user.username, "avatar_url": None,
            "email": user.email}


def hook_project(backend: Backend, project: Project) -> JSON:
    group = backend.state.groups[project.group_id]
    web_url = backend.web_url(project)
    ssh = f"git@127.0.0.1:{project.path_with_namespace}.git"
    return {"id": project.id, "name": project.name, "description": "", "web_url": web_url,
            "avatar_url": None, "git_ssh_url": ssh, "git_http_url": f"{web_url}.git",
            "namespace": group.name, "visibility_level": 0,
            "path_with_namespace": project.path_with_namespace,
            "default_branch": project.default_branch, "ci_config_path": "",
            "homepage": web_url, "url": f"{web_url}.git", "ssh_url": ssh,
            "http_url": f"{web_url}.git"}


def hook_repository(backend: Backend, project: Project) -> JSON:
    web_url = backend.web_url(project)
    return {"name": project.name, "url": f"{web_url}.git", "description": "", "homepage": web_url}


def hook_labels(backend: Backend, mr: MergeRequest) -> list[JSON]:
    created = hook_time(mr.created_at)
    return [{"id": zlib.crc32(title.encode()) % 100000, "title": title, "color": "#428BCA",
             "project_id": mr.project_id, "created_at": created, "updated_at": created,
             "template": False, "description": None, "type": "ProjectLabel", "group_id": None}
            for title in mr.labels]


def hook_commit(backend: Backend, project: Project, sha: str) -> JSON:
    info = backend.repo(project).commit_info(sha)
    return {"id": sha, "message": info.message, "title": info.title,
            "timestamp": hook_time(info.authored_at),
            "url": f"{backend.web_url(project)}/-/commit/{sha}",
            "author": {"name": info.author_name, "email": info.author_email}}


def _mr_common(backend: Backend, mr: MergeRequest) -> JSON:
    """Fields shared by the MR hook's object_attributes and the note hook's merge_request."""
    project = backend.state.projects[mr.project_id]
    section = hook_project(backend, project)
    return {
        "id": mr.id, "iid": mr.iid, "target_branch": mr.target_branch,
        "source_branch": mr.source_branch, "source_project_id": mr.project_id,
        "target_project_id": mr.project_id, "author_id": mr.author_id,
        "assignee_id": mr.assignee_ids[0] if mr.assignee_ids else None,
        "title": mr.title, "description": mr.description,
        "created_at": hook_time(mr.created_at), "updated_at": hook_time(mr.updated_at),
        "milestone_id": None, "state": mr.state,
        "merge_status": mergeability.merge_status(backend, mr),
        "detailed_merge_status": mergeability.detailed_merge_status(backend, mr),
        "work_in_progress": mr.draft, "draft": mr.draft, "labels": hook_labels(backend, mr),
        "source": section, "target": section,
        "last_commit": hook_commit(backend, project, mr.sha),
        "url": f"{backend.web_url(project)}/-/merge_requests/{mr.iid}",
    }


def mr_object_attributes(backend: Backend, mr: MergeRequest, action: str | None,
                         oldrev: str | None = None) -> JSON:
    head = backend.state.head_pipeline(mr)
    attrs = {
        **_mr_common(backend, mr),
        "assignee_ids": list(mr.assignee_ids), "reviewer_ids": list(mr.reviewer_ids),
        "last_edited_at": None, "last_edited_by_id": None, "state_id": STATE_IDS[mr.state],
        "blocking_discussions_resolved": mergeability.blocking_discussions_resolved(backend.state, mr),
        "first_contribution": False, "prepared_at": hook_time(mr.created_at),
        "total_time_spent": 0, "time_change": 0, "time_estimate": 0,
        "human_total_time_spent": None, "human_time_change": None, "human_time_estimate": None,
        "head_pipeline_id": head.id if head else None, "merge_commit_sha": mr.merge_commit_sha,
        "merge_error": mr.merge_error, "merge_params": dict(mr.merge_params),
        "merge_user_id": mr.merge_user_id,
        "merge_when_pipeline_succeeds": mr.merge_when_pipeline_succeeds,
        "updated_by_id": None,
    }
    if action:
        attrs["action"] = action
    if oldrev:
        attrs["oldrev"] = oldrev
    return attrs


def merge_request_payload(backend: Backend, mr: MergeRequest, user: User, action: str,
                          changes: dict[str, Any] | None = None, oldrev: str | None = None) -> JSON:
    project = backend.state.projects[mr.project_id]
    return {
        "object_kind": "merge_request", "event_type": "merge_request",
        "user": hook_user(backend, user), "project": hook_project(backend, project),
        "repository": hook_repository(backend, project),
        "object_attributes": mr_object_attributes(backend, mr, action, oldrev),
        "labels": hook_labels(backend, mr), "changes": changes or {},
        "assignees": [_short_user(backend, uid) for uid in mr.assignee_ids],
        "reviewers": [_short_user(backend, uid) for uid in mr.reviewer_ids],
    }


def _short_user(backend: Backend, user_id: int) -> JSON:
    user = backend.state.users[user_id]
    return {"id": user.id, "name": user.name, "username": user.username, "avatar_url": None}


def note_payload(backend: Backend, mr: MergeRequest, note_id: int, action: str) -> JSON:
    state = backend.state
    note = state.notes[note_id]
    project = state.projects[mr.project_id]
    assignee = state.users.get(mr.assignee_ids[0]) if mr.assignee_ids else None
    mr_url = f"{backend.web_url(project)}/-/merge_requests/{mr.iid}"
    return {
        "object_kind": "note", "event_type": "note",
        "user": hook_user(backend, state.users[note.author_id]), "project_id": project.id,
        "project": hook_project(backend, project), "repository": hook_repository(backend, project),
        "object_attributes": {
            "id": note.id, "note": note.body, "noteable_type": "MergeRequest",
            "author_id": note.author_id, "created_at": hook_time(note.created_at),
            "updated_at": hook_time(note.updated_at), "project_id": project.id,
            "attachment": None, "line_code": None, "commit_id": "", "noteable_id": mr.id,
            "system": note.system, "st_diff": None, "action": action,
            "discussion_id": note.discussion_id, "type": "DiscussionNote" if note.resolvable else None,
            "resolvable": note.resolvable, "url": f"{mr_url}#note_{note.id}",
        },
        "merge_request": {
            **_mr_common(backend, mr), "position": 0,
            "assignee": {"name": assignee.name, "username": assignee.username, "avatar_url": None}
            if assignee else None,
        },
    }


def _pipeline_mr(backend: Backend, pipeline: Pipeline) -> JSON | None:
    if pipeline.mr_iid is None:
        return None
    mr = backend.state.merge_request(pipeline.project_id, pipeline.mr_iid)
    if mr is None:
        return None
    project = backend.state.projects[mr.project_id]
    return {"id": mr.id, "iid": mr.iid, "title": mr.title, "source_branch": mr.source_branch,
            "source_project_id": mr.project_id, "target_branch": mr.target_branch,
            "target_project_id": mr.project_id, "state": mr.state,
            "merge_status": mergeability.merge_status(backend, mr),
            "detailed_merge_status": mergeability.detailed_merge_status(backend, mr),
            "url": f"{backend.web_url(project)}/-/merge_requests/{mr.iid}"}


def _seconds(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else float(end - start)


def pipeline_payload(backend: Backend, pipeline: Pipeline) -> JSON:
    state = backend.state
    project = state.projects[pipeline.project_id]
    user = state.users.get(pipeline.user_id) if pipeline.user_id else None
    short_project = {k: v for k, v in hook_project(backend, project).items()
                     if k not in {"ci_config_path", "homepage", "url", "ssh_url", "http_url"}}
    duration = _seconds(pipeline.started_at, pipeline.finished_at)
    queued = _seconds(pipeline.created_at, pipeline.started_at)
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline.id, "iid": pipeline.iid, "name": None, "ref": pipeline.ref, "tag": False,
            "sha": pipeline.sha, "before_sha": pipeline.before_sha, "source": pipeline.source,
            "status": pipeline.status,
            "detailed_status": PIPELINE_DETAILED_STATUS.get(pipeline.status, pipeline.status),
            "stages": ["build", "test"], "created_at": hook_time(pipeline.created_at),
            "finished_at": hook_time(pipeline.finished_at),
            "duration": int(duration) if duration is not None else None,
            "queued_duration": int(queued) if queued is not None else None, "variables": [],
            "url": f"{backend.web_url(project)}/-/pipelines/{pipeline.id}",
        },
        "merge_request": _pipeline_mr(backend, pipeline),
        "user": hook_user(backend, user), "project": short_project,
        "commit": hook_commit(backend, project, pipeline.sha),
        "builds": [_build(backend, pipeline, job, user) for job in pipeline.jobs],
    }


def _build(backend: Backend, pipeline: Pipeline, job: Job, user: User | None) -> JSON:
    return {"id": job.id, "stage": job.stage, "name": job.name, "status": job.status,
            "created_at": hook_time(job.created_at), "started_at": hook_time(job.started_at),
            "finished_at": hook_time(job.finished_at),
            "duration": _seconds(job.started_at, job.finished_at),
            "queued_duration": _seconds(job.created_at, job.started_at),
            "failure_reason": job.failure_reason, "when": "on_success", "manual": False,
            "allow_failure": False, "user": hook_user(backend, user), "runner": None,
            "artifacts_file": {"filename": None, "size": None}, "environment": None}


def job_payload(backend: Backend, pipeline: Pipeline, job: Job) -> JSON:
    state = backend.state
    project = state.projects[pipeline.project_id]
    user = state.users.get(pipeline.user_id) if pipeline.user_id else None
    info = backend.repo(project).commit_info(pipeline.sha)
    repository = {**hook_repository(backend, project),
                  "git_http_url": f"{backend.web_url(project)}.git",
                  "git_ssh_url": f"git@127.0.0.1:{project.path_with_namespace}.git",
                  "visibility_level": 0}
    return {
        "object_kind": "build", "ref": pipeline.ref, "tag": False, "before_sha": pipeline.before_sha,
        "sha": pipeline.sha, "build_id": job.id, "build_name": job.name, "build_stage": job.stage,
        "build_status": job.status, "build_created_at": hook_time(job.created_at),
        "build_started_at": hook_time(job.started_at),
        "build_finished_at": hook_time(job.finished_at),
        "build_duration": _seconds(job.started_at, job.finished_at),
        "build_queued_duration": _seconds(job.created_at, job.started_at),
        "build_allow_failure": False, "build_failure_reason": job.failure_reason or "unknown_failure",
        "retries_count": 0, "pipeline_id": pipeline.id, "project_id": project.id,
        "project_name": f"{backend.state.groups[project.group_id].name} / {project.name}",
        "user": hook_user(backend, user),
        "commit": {"id": pipeline.id, "name": None, "sha": pipeline.sha, "message": info.message,
                   "author_name": info.author_name, "author_email": info.author_email,
                   "author_url": None, "status": pipeline.status,
                   "duration": None, "started_at": hook_time(pipeline.started_at),
                   "finished_at": hook_time(pipeline.finished_at)},
        "repository": repository, "runner": None, "environment": None,
    }


def push_payload(backend: Backend, project: Project, user: User, branch: str, before: str,
                 after: str) -> JSON:
    repo = backend.repo(project)
    zero = "0" * 40
    all_shas = repo.log(after, None if before == zero else before) if after != zero else []
    commits = [{**hook_commit(backend, project, sha), **repo.commit_changes(sha)} for sha in all_shas[:20]]
    return {
        "object_kind": "push", "event_name": "push", "before": before, "after": after,
        "ref": f"refs/heads/{branch}", "ref_protected": branch in project.protected_branches,
        "checkout_sha": after if after != zero else None, "message": None,
        "user_id": user.id, "user_name": user.name, "user_username": user.username,
        "user_email": user.email, "user_avatar": None, "project_id": project.id,
        "project": hook_project(backend, project), "commits": commits,
        "total_commits_count": len(all_shas), "repository": hook_repository(backend, project),
    }
