"""GitLab adapter: rules.ports.GitLabPort on top of python-gitlab."""

from __future__ import annotations

import fnmatch
import threading
import time
from typing import Any, Callable, TypeVar
from urllib.parse import quote

import gitlab
import requests
from gitlab import exceptions as gle

from merge_assist.rules.errors import GitLabError, HeadMoved, NotFound, NotMergeable, RebaseRefused, TransientGitLabError
from merge_assist.rules.metrics import METRICS
from merge_assist.rules.model import Approvals, MergeRequest, Pipeline, Project

T = TypeVar("T")
CACHE_SECONDS = 300.0
"""Protected-branch rules: authorization depends on them, so they are kept only five minutes."""
PROJECT_CACHE_SECONDS = 900.0
"""Project settings (merge method, pipeline requirements) change rarely."""


_KEYED_SEGMENTS = {"projects": ":project", "files": ":file", "branches": ":branch", "protected_branches": ":branch",
                   "commits": ":sha"}


def endpoint_template(path: str) -> str:
    """`/api/v4/projects/7/merge_requests/3/merge` -> `/projects/:project/merge_requests/:id/merge`.

    Metrics label calls by template, never by the actual path: ids and names would make a new
    time series for every merge request.
    """
    path = path.split("?", 1)[0]
    if "/api/v4/" in path:
        path = path.split("/api/v4", 1)[1]
    segments = path.strip("/").split("/")
    template = [":id" if segment.isdigit() else segment for segment in segments]
    for index, previous in enumerate(segments[:-1]):
        if previous in _KEYED_SEGMENTS:
            template[index + 1] = _KEYED_SEGMENTS[previous]
    return "/" + "/".join(template)


def _count_response(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    METRICS.gitlab_call(str(response.request.method), endpoint_template(response.request.path_url),
                        str(response.status_code))


def _count_unreachable(exc: requests.RequestException) -> None:
    request = exc.request
    if isinstance(request, requests.PreparedRequest):
        METRICS.gitlab_call(str(request.method), endpoint_template(request.path_url), "unreachable")


def _translate(exc: Exception) -> GitLabError:
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return TransientGitLabError(None, f"cannot reach GitLab ({type(exc).__name__})")
    if isinstance(exc, gle.GitlabError):
        status = exc.response_code
        message = str(exc.error_message)
        if status == 404:
            return NotFound(status, message)
        if status is not None and (status >= 500 or status == 429):
            return TransientGitLabError(status, message)
        return GitLabError(status, message)
    return GitLabError(None, f"{type(exc).__name__}")


class _TTLCache:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and now - hit[0] < self._seconds:
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        self.put(key, value)
        return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)


def _pipeline(data: dict[str, Any] | None) -> Pipeline | None:
    if not data:
        return None
    return Pipeline(id=int(data["id"]), sha=str(data.get("sha", "")), status=str(data.get("status", "")),
                    ref=str(data.get("ref", "")), web_url=str(data.get("web_url", "")))


def merge_request_from_json(data: dict[str, Any]) -> MergeRequest:
    author = data.get("author") or {}
    return MergeRequest(
        project_id=int(data["project_id"]), iid=int(data["iid"]), title=str(data.get("title", "")),
        author_id=int(author.get("id", 0)), author_username=str(author.get("username", "")),
        source_branch=str(data["source_branch"]), target_branch=str(data["target_branch"]),
        state=str(data["state"]), sha=str(data.get("sha") or ""),
        draft=bool(data.get("draft") or data.get("work_in_progress")),
        detailed_merge_status=str(data.get("detailed_merge_status") or "unchecked"),
        has_conflicts=bool(data.get("has_conflicts")),
        blocking_discussions_resolved=bool(data.get("blocking_discussions_resolved", True)),
        labels=tuple(str(label) for label in data.get("labels") or ()),
        head_pipeline=_pipeline(data.get("head_pipeline")),
        rebase_in_progress=bool(data.get("rebase_in_progress")),
        merge_error=data.get("merge_error"), web_url=str(data.get("web_url", "")),
        merge_commit_sha=data.get("merge_commit_sha") or data.get("squash_commit_sha"),
        squash=bool(data.get("squash")),
    )


class PythonGitlabAdapter:
    """Talks to GitLab over REST v4 with python-gitlab; caches what rarely changes for five minutes."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self._gl = gitlab.Gitlab(url=url, private_token=token, timeout=timeout, retry_transient_errors=False)
        self._gl.session.hooks["response"].append(_count_response)
        self._projects = _TTLCache(PROJECT_CACHE_SECONDS)
        self._protected = _TTLCache(CACHE_SECONDS)
        self._me: tuple[int, str] | None = None

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GitLabError:
            raise
        except (gle.GitlabError, requests.RequestException) as exc:
            if isinstance(exc, requests.RequestException):
                _count_unreachable(exc)
            raise _translate(exc) from None

    def current_user(self) -> tuple[int, str]:
        if self._me is None:
            data = self._call(lambda: self._gl.http_get("/user"))
            self._me = (int(data["id"]), str(data["username"]))
        return self._me

    def get_project(self, project_id: int) -> Project:
        return self._projects.get(project_id, lambda: self._fetch_project(str(project_id)))

    def get_project_by_path(self, path: str) -> Project | None:
        """The project at `group/name`, or None when it does not exist or is not visible."""
        try:
            project = self._fetch_project(quote(path, safe=""))
        except NotFound:
            return None
        self._projects.put(project.id, project)
        return project

    def _fetch_project(self, id_or_encoded_path: str) -> Project:
        data = self._call(lambda: self._gl.http_get(f"/projects/{id_or_encoded_path}"))
        return Project(
            id=int(data["id"]), path=str(data["path_with_namespace"]),
            default_branch=str(data.get("default_branch") or "main"),
            merge_method=str(data.get("merge_method") or "merge"),
            only_allow_merge_if_pipeline_succeeds=bool(data.get("only_allow_merge_if_pipeline_succeeds")),
            allow_merge_on_skipped_pipeline=bool(data.get("allow_merge_on_skipped_pipeline")),
            web_url=str(data.get("web_url", "")),
        )

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequest:
        data = self._call(lambda: self._gl.http_get(
            f"/projects/{project_id}/merge_requests/{iid}", query_data={"include_rebase_in_progress": "true"}))
        return merge_request_from_json(data)

    def get_approvals(self, project_id: int, iid: int) -> Approvals:
        data = self._call(lambda: self._gl.http_get(f"/projects/{project_id}/merge_requests/{iid}/approvals"))
        approved_by = tuple(str((a.get("user") or {}).get("username", "")) for a in data.get("approved_by") or ())
        return Approvals(approvals_required=int(data.get("approvals_required") or 0),
                         approvals_left=int(data.get("approvals_left") or 0), approved_by=approved_by)

    def get_access_level(self, project_id: int, user_id: int) -> int:
        try:
            data = self._call(lambda: self._gl.http_get(f"/projects/{project_id}/members/all/{user_id}"))
        except NotFound:
            return 0
        if data.get("state", "active") != "active":
            return 0
        return int(data.get("access_level") or 0)

    def get_merge_access_level(self, project_id: int, branch: str) -> int | None:
        def load() -> list[tuple[str, int]]:
            rows = self._call(lambda: self._gl.http_list(f"/projects/{project_id}/protected_branches", get_all=True))
            result = []
            for row in rows:
                levels = [int(level.get("access_level") or 0) for level in row.get("merge_access_levels") or ()]
                levels = [level for level in levels if level > 0]
                # No role may merge ("No one", level 0): only an admin could, so require admin.
                result.append((str(row["name"]), min(levels) if levels else 60))
            return result

        matches = [level for name, level in self._protected.get(project_id, load) if fnmatch.fnmatchcase(branch, name)]
        return max(matches) if matches else None

    def get_file(self, project_id: int, path: str, ref: str) -> str | None:
        try:
            raw = self._call(lambda: self._gl.http_get(
                f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw", query_data={"ref": ref},
                raw=True))
        except NotFound:
            return None
        return raw.content.decode("utf-8", errors="replace")

    def get_branch_sha(self, project_id: int, branch: str) -> str:
        data = self._call(lambda: self._gl.http_get(
            f"/projects/{project_id}/repository/branches/{quote(branch, safe='')}"))
        return str(data["commit"]["id"])

    def get_pipeline(self, project_id: int, pipeline_id: int) -> Pipeline:
        data = self._call(lambda: self._gl.http_get(f"/projects/{project_id}/pipelines/{pipeline_id}"))
        pipeline = _pipeline(data)
        assert pipeline is not None
        return pipeline

    def rebase(self, project_id: int, iid: int) -> None:
        try:
            self._call(lambda: self._gl.http_put(f"/projects/{project_id}/merge_requests/{iid}/rebase"))
        except GitLabError as exc:
            if exc.status in (403, 409):
                raise RebaseRefused(exc.status, exc.message) from None
            raise

    def merge(self, project_id: int, iid: int, sha: str, squash: bool | None = None) -> MergeRequest:
        body: dict[str, Any] = {"sha": sha}
        if squash is not None:
            body["squash"] = squash
        try:
            data = self._call(lambda: self._gl.http_put(
                f"/projects/{project_id}/merge_requests/{iid}/merge", post_data=body))
        except GitLabError as exc:
            if exc.status == 409:
                raise HeadMoved(409, exc.message) from None
            if exc.status in (405, 406, 422):
                raise NotMergeable(exc.status, exc.message) from None
            raise
        return merge_request_from_json(data)

    def post_note(self, project_id: int, iid: int, body: str) -> int:
        data = self._call(lambda: self._gl.http_post(
            f"/projects/{project_id}/merge_requests/{iid}/notes", post_data={"body": body}))
        return int(data["id"])

    def award_emoji(self, project_id: int, iid: int, note_id: int | None, name: str) -> None:
        path = f"/projects/{project_id}/merge_requests/{iid}"
        path += f"/notes/{note_id}/award_emoji" if note_id is not None else "/award_emoji"
        try:
            self._call(lambda: self._gl.http_post(path, post_data={"name": name}))
        except NotFound as exc:
            if "already been taken" not in exc.message:
                raise
