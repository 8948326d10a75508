"""The queue as people read it: each lane in merge order with project path, MR title, link,
author, priority, state, why it waits and for how long; and the latest merges and failures.

MR titles and authors come from GitLab, cached briefly so that a dashboard refresh does not turn
into one GitLab request per entry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from merge_assist.rules.errors import GitLabError
from merge_assist.rules.model import EntryState, QueueEntry
from merge_assist.storage.types import utcnow

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.admin")
DETAILS_TTL_SECONDS = 60.0
RECENT_LIMIT = 20


@dataclass(frozen=True)
class MergeRequestDetails:
    title: str
    author: str
    web_url: str


class DetailsCache:
    """MR details and project paths from GitLab, kept for a minute; failures are not cached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._details: dict[tuple[int, int], tuple[float, MergeRequestDetails]] = {}
        self._paths: dict[int, str] = {}

    def merge_request(self, runtime: "Runtime", project_id: int, iid: int) -> MergeRequestDetails | None:
        now = time.monotonic()
        with self._lock:
            cached = self._details.get((project_id, iid))
        if cached is not None and now - cached[0] < DETAILS_TTL_SECONDS:
            return cached[1]
        if runtime.gitlab is None:
            return None
        try:
            mr = runtime.gitlab.get_merge_request(project_id, iid)
        except GitLabError as exc:
            log.info("no details for %s!%s: %s", project_id, iid, type(exc).__name__)
            return None
        details = MergeRequestDetails(mr.title, mr.author_username, mr.web_url)
        with self._lock:
            self._details[(project_id, iid)] = (now, details)
        return details

    def project_path(self, runtime: "Runtime", project_id: int) -> str:
        with self._lock:
            if project_id in self._paths:
                return self._paths[project_id]
        known = runtime.store.projects.get(project_id)
        path = known.path if known is not None else None
        if path is None and runtime.gitlab is not None:
            try:
                path = runtime.gitlab.get_project(project_id).path
            except GitLabError:
                path = None
        if path is None:
            return str(project_id)
        with self._lock:
            self._paths[project_id] = path
        return path


def _seconds(since: datetime, until: datetime) -> int:
    return max(0, int((until - since).total_seconds()))


def _entry_json(runtime: "Runtime", cache: DetailsCache, entry: QueueEntry) -> dict[str, Any]:
    details = cache.merge_request(runtime, entry.project_id, entry.mr_iid)
    return {"id": entry.id, "project_id": entry.project_id,
            "project_path": cache.project_path(runtime, entry.project_id), "mr_iid": entry.mr_iid,
            "title": details.title if details else "", "author": details.author if details else "",
            "web_url": details.web_url if details else "", "target_branch": entry.target_branch,
            "priority": entry.priority.label, "state": entry.state.value, "reason": entry.reason,
            "requested_by": entry.requested_by, "attempts": entry.attempts,
            "enqueued_at": entry.enqueued_at.isoformat(), "updated_at": entry.updated_at.isoformat()}


def lanes_snapshot(runtime: "Runtime", cache: DetailsCache, visible: frozenset[int] | None,
                   allowed: Callable[[int], list[str]]) -> dict[str, Any]:
    """Lanes in a stable order, entries in merge order; `visible` limits the projects shown and
    `allowed` says, per project, which permissions the reader holds (for the dashboard's buttons)."""
    now = utcnow()
    store = runtime.store
    lanes = sorted((lane for lane in store.queue.waiting_lanes() if visible is None or lane.project_id in visible),
                   key=lambda lane: (lane.project_id, lane.target_branch))
    lane_views = []
    for lane in lanes:
        entries = []
        for position, entry in enumerate(store.queue.lane_entries(lane), start=1):
            view = _entry_json(runtime, cache, entry)
            view.update(position=position, waiting_seconds=_seconds(entry.enqueued_at, now))
            entries.append(view)
        lane_views.append({"project_id": lane.project_id, "project_path": cache.project_path(runtime, lane.project_id),
                           "target_branch": lane.target_branch, "paused": store.queue.lane_paused(lane),
                           "allowed": allowed(lane.project_id), "entries": entries})
    finished = [e for e in store.queue.all_entries(limit=200)
                if e.state in (EntryState.MERGED, EntryState.FAILED) and (visible is None or e.project_id in visible)]
    recent = []
    for entry in sorted(finished, key=lambda e: e.updated_at, reverse=True)[:RECENT_LIMIT]:
        view = _entry_json(runtime, cache, entry)
        view.update(finished_at=entry.updated_at.isoformat(),
                    duration_seconds=_seconds(entry.enqueued_at, entry.updated_at))
        recent.append(view)
    return {"lanes": lane_views, "recent": recent}
