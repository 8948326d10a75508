"""GitLab adapter: rules.ports.GitLabPort on top of python-gitlab."""

from __future__ import annotations

import fnmatch
import threading
import time
from typing import Any, Callable, TypeVar, cast
from urllib.parse import quote

import gitlab
import requests
from gitlab import exceptions as gle

from merge_assist.adapters.read_cache import (
    EpochCache, LocalEpochs, bump_quietly, merge_requests_scope, project_scope,
)
from merge_assist.rules.errors import GitLabError, HeadMoved, NotFound, NotMergeable, RebaseRefused, TransientGitLabError
from merge_assist.rules.metrics import METRICS
from merge_assist.rules.model import Approvals, MergeRequest, Pipeline, Project
from merge_assist.rules.ports import ReadEpochs

T = TypeVar("T")
ATTEMPTS = 3
MAX_RETRY_WAIT_SECONDS = 5.0
"""A worker waits at most this long for one Retry-After; a longer one fails the call as transient
(the lane plans again later) instead of holding the thread."""
PROTECTED_CACHE_SECONDS = 900.0
"""Protected-branch rules: authorization depends on them and no webhook reports a change, so they
are kept 15 minutes (the commenter's own access level is read for every command)."""
PROJECT_CACHE_SECONDS = 3600.0
"""Project settings (merge method, pipeline requirements) change rarely, send no webhook, and GitLab
enforces them on the merge call itself; a refused merge drops them."""
MERGE_REQUEST_CACHE_SECONDS = 900.0
"""The latest read of an MR, for the lane's next look when no webhook said it changed; webhooks
about the project's MRs drop it, and this bounds how long a lost webhook goes unnoticed."""


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


class _BoundedRetries(gitlab.Gitlab):
    """python-gitlab would sleep for whatever Retry-After says, ten times over, and crash on a
    Retry-After that is a date; its own retries are off and `PythonGitlabAdapter._call` retries
    with bounded waits instead. The last Retry-After seen by each thread is kept for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_retry_after = threading.local()
        self.session.hooks["response"].append(self._remember_retry_after)

    def _remember_retry_after(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        self.last_retry_after.value = response.headers.get("Retry-After")

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.update(obey_rate_limit=False, retry_transient_errors=False, max_retries=0)
        self.last_retry_after.value = None
        return super().http_request(*args, **kwargs)

    def retry_after(self) -> float | None:
        raw = getattr(self.last_retry_after, "value", None)
        try:
            return max(0.0, float(raw)) if raw is not None else None
        except ValueError:  # an HTTP date: not worth parsing for a wait this short
            return None


def retry_wait(error: GitLabError, attempt: int, retry_after: float | None, *, idempotent: bool) -> float | None:
    """Seconds to wait before trying the call again, or None to give up now.

    429 means GitLab did nothing, so any call may be repeated; after a 5xx or a timeout only a
    read is repeated (a note or a merge might have happened). Retry-After is honoured up to
    MAX_RETRY_WAIT_SECONDS; beyond that the call fails as transient at once.
    """
    if not isinstance(error, TransientGitLabError) or attempt >= ATTEMPTS:
        return None
    if error.status != 429 and not idempotent:
        return None
    wait = retry_after if retry_after is not None else 0.5 * 2 ** (attempt - 1)
    return wait if wait <= MAX_RETRY_WAIT_SECONDS else None


def _json_object(data: object) -> dict[str, Any]:
    """A JSON object answer; python-gitlab types answers loosely (object, list or response)."""
    if not isinstance(data, dict):
        raise GitLabError(None, f"expected a JSON object from GitLab, got {type(data).__name__}")
    return data


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
    """Talks to GitLab over REST v4 with python-gitlab. Project settings and protected-branch rules
    are cached; MR reads are kept for `cached_merge_request` (see adapters/read_cache.py)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, epochs: ReadEpochs | None = None) -> None:
        self._gl = _BoundedRetries(url=url, private_token=token, timeout=timeout)
        self._gl.session.hooks["response"].append(_count_response)
        self._epochs: ReadEpochs = epochs or LocalEpochs()
        self._projects: EpochCache[Project] = EpochCache(self._epochs, PROJECT_CACHE_SECONDS)
        self._protected: EpochCache[list[tuple[str, int]]] = EpochCache(self._epochs, PROTECTED_CACHE_SECONDS)
        self._merge_requests: EpochCache[MergeRequest] = EpochCache(self._epochs, MERGE_REQUEST_CACHE_SECONDS)
        self._open_lists: EpochCache[list[MergeRequest]] = EpochCache(self._epochs, MERGE_REQUEST_CACHE_SECONDS)
        self._heads: EpochCache[str] = EpochCache(self._epochs, MERGE_REQUEST_CACHE_SECONDS)
        self._me: tuple[int, str] | None = None

    def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """`fn`'s answer; GitLab's errors as rules.errors, after bounded retries (see retry_wait)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except GitLabError:
                raise
            except (gle.GitlabError, requests.RequestException) as exc:
                if isinstance(exc, requests.RequestException):
                    _count_unreachable(exc)
                error = _translate(exc)
            wait = retry_wait(error, attempt, self._gl.retry_after(), idempotent=idempotent)
            if wait is None:
                raise error
            time.sleep(wait)

    def current_user(self) -> tuple[int, str]:
        if self._me is None:
            data = _json_object(self._call(lambda: self._gl.http_get("/user")))
            self._me = (int(data["id"]), str(data["username"]))
        return self._me

    def get_project(self, project_id: int) -> Project:
        return self._projects.get(project_scope(project_id), project_id,
                                  lambda: self._fetch_project(str(project_id)))

    def get_project_by_path(self, path: str) -> Project | None:
        """The project at `group/name`, or None when it does not exist or is not visible."""
        try:
            project = self._fetch_project(quote(path, safe=""))
        except NotFound:
            return None
        # The scope is known only now; its bumps (refused merges) are rare enough to take the epoch after.
        return self._projects.store(project.id, self._epochs.current(project_scope(project.id)), project)

    def _fetch_project(self, id_or_encoded_path: str) -> Project:
        data = _json_object(self._call(lambda: self._gl.http_get(f"/projects/{id_or_encoded_path}")))
        return Project(
            id=int(data["id"]), path=str(data["path_with_namespace"]),
            default_branch=str(data.get("default_branch") or "main"),
            merge_method=str(data.get("merge_method") or "merge"),
            only_allow_merge_if_pipeline_succeeds=bool(data.get("only_allow_merge_if_pipeline_succeeds")),
            allow_merge_on_skipped_pipeline=bool(data.get("allow_merge_on_skipped_pipeline")),
            web_url=str(data.get("web_url", "")),
            visibility=str(data.get("visibility") or "private"),
        )

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequest:
        def load() -> MergeRequest:
            data = _json_object(self._call(lambda: self._gl.http_get(
                f"/projects/{project_id}/merge_requests/{iid}", query_data={"include_rebase_in_progress": "true"})))
            return merge_request_from_json(data)

        return self._merge_requests.fresh(merge_requests_scope(project_id), (project_id, iid), load)

    def cached_merge_request(self, project_id: int, iid: int) -> MergeRequest | None:
        return self._merge_requests.peek(merge_requests_scope(project_id), (project_id, iid))

    def _changed(self, project_id: int, *, settings: bool = False) -> None:
        """The bot itself changed an MR (or GitLab refused to): what other processes cached is stale."""
        bump_quietly(self._epochs, merge_requests_scope(project_id))
        if settings:
            bump_quietly(self._epochs, project_scope(project_id))

    def get_approvals(self, project_id: int, iid: int) -> Approvals:
        data = _json_object(self._call(lambda: self._gl.http_get(f"/projects/{project_id}/merge_requests/{iid}/approvals")))
        approved_by = tuple(str((a.get("user") or {}).get("username", "")) for a in data.get("approved_by") or ())
        return Approvals(approvals_required=int(data.get("approvals_required") or 0),
                         approvals_left=int(data.get("approvals_left") or 0), approved_by=approved_by)

    def get_access_level(self, project_id: int, user_id: int) -> int:
        try:
            data = _json_object(self._call(lambda: self._gl.http_get(f"/projects/{project_id}/members/all/{user_id}")))
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

        rules = self._protected.get(project_scope(project_id), project_id, load)
        matches = [level for name, level in rules if fnmatch.fnmatchcase(branch, name)]
        return max(matches) if matches else None

    def get_file(self, project_id: int, path: str, ref: str) -> str | None:
        try:
            raw = self._call(lambda: self._gl.http_get(
                f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw", query_data={"ref": ref},
                raw=True))
        except NotFound:
            return None
        if not isinstance(raw, requests.Response):
            raise GitLabError(None, f"expected the raw file from GitLab, got {type(raw).__name__}")
        return raw.content.decode("utf-8", errors="replace")

    def get_branch_sha(self, project_id: int, branch: str) -> str:
        def load() -> str:
            data = _json_object(self._call(lambda: self._gl.http_get(
                f"/projects/{project_id}/repository/branches/{quote(branch, safe='')}")))
            return str(data["commit"]["id"])

        return self._heads.fresh(merge_requests_scope(project_id), (project_id, branch), load)

    def cached_branch_sha(self, project_id: int, branch: str) -> str | None:
        return self._heads.peek(merge_requests_scope(project_id), (project_id, branch))

    def get_pipeline(self, project_id: int, pipeline_id: int) -> Pipeline:
        data = _json_object(self._call(lambda: self._gl.http_get(f"/projects/{project_id}/pipelines/{pipeline_id}")))
        pipeline = _pipeline(data)
        assert pipeline is not None
        return pipeline

    def list_open_merge_requests(self, project_id: int, target_branch: str) -> list[MergeRequest]:
        def load() -> list[MergeRequest]:
            rows = self._call(lambda: self._gl.http_list(
                f"/projects/{project_id}/merge_requests",
                query_data={"state": "opened", "target_branch": target_branch, "per_page": 100}, get_all=True))
            return [merge_request_from_json(row) for row in cast(list[dict[str, Any]], rows) if isinstance(row, dict)]

        return list(self._open_lists.fresh(merge_requests_scope(project_id), (project_id, target_branch), load))

    def cached_open_merge_requests(self, project_id: int, target_branch: str) -> list[MergeRequest] | None:
        cached = self._open_lists.peek(merge_requests_scope(project_id), (project_id, target_branch))
        return list(cached) if cached is not None else None

    def pipelines_for_sha(self, project_id: int, sha: str) -> list[Pipeline]:
        rows = self._call(lambda: self._gl.http_list(f"/projects/{project_id}/pipelines",
                                                     query_data={"sha": sha, "per_page": 20}, get_all=False))
        found = (_pipeline(row) for row in cast(list[dict[str, Any]], rows) if isinstance(row, dict))
        return [pipeline for pipeline in found if pipeline is not None]

    def cancel_pipeline(self, project_id: int, pipeline_id: int) -> None:
        self._call(lambda: self._gl.http_post(f"/projects/{project_id}/pipelines/{pipeline_id}/cancel"))

    def retry_pipeline(self, project_id: int, pipeline_id: int) -> None:
        self._call(lambda: self._gl.http_post(f"/projects/{project_id}/pipelines/{pipeline_id}/retry"),
                   idempotent=False)

    def rebase(self, project_id: int, iid: int) -> None:
        try:
            self._call(lambda: self._gl.http_put(f"/projects/{project_id}/merge_requests/{iid}/rebase"),
                       idempotent=False)
        except GitLabError as exc:
            if exc.status in (403, 409):
                raise RebaseRefused(exc.status, exc.message) from None
            raise
        finally:
            self._changed(project_id)

    def merge(self, project_id: int, iid: int, sha: str, squash: bool | None = None) -> MergeRequest:
        body: dict[str, Any] = {"sha": sha}
        if squash is not None:
            body["squash"] = squash
        try:
            data = _json_object(self._call(lambda: self._gl.http_put(
                f"/projects/{project_id}/merge_requests/{iid}/merge", post_data=body), idempotent=False))
        except GitLabError as exc:
            # A refusal may come from settings we hold in the cache (merge method, pipeline rules).
            self._changed(project_id, settings=exc.status in (405, 406, 422))
            if exc.status == 409:
                raise HeadMoved(409, exc.message) from None
            if exc.status in (405, 406, 422):
                raise NotMergeable(exc.status, exc.message) from None
            raise
        self._changed(project_id)
        return merge_request_from_json(data)

    def post_note(self, project_id: int, iid: int, body: str) -> int:
        data = _json_object(self._call(lambda: self._gl.http_post(
            f"/projects/{project_id}/merge_requests/{iid}/notes", post_data={"body": body}), idempotent=False))
        return int(data["id"])

    def award_emoji(self, project_id: int, iid: int, note_id: int | None, name: str) -> None:
        path = f"/projects/{project_id}/merge_requests/{iid}"
        path += f"/notes/{note_id}/award_emoji" if note_id is not None else "/award_emoji"
        try:
            self._call(lambda: self._gl.http_post(path, post_data={"name": name}), idempotent=False)
        except NotFound as exc:
            if "already been taken" not in exc.message:
                raise
