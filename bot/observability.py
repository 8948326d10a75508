"""Metrics and log wiring: the prometheus_client implementation installed in every process, the
queue gauges read from the database by `serve`, the `worker` process's own metrics and health
port, and the event id put in scope while a worker handles a queued event.

Why a port per worker instead of prometheus_client's multiprocess mode: `serve` and the workers
run in different pods (or containers), which share no directory; each one serving its own
`/metrics` lets Prometheus discover and sum them like any other pods, and the same port gives the
worker a liveness and readiness endpoint for Kubernetes probes.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable

from merge_assist.adapters.prometheus import CONTENT_TYPE, LaneDepth, PrometheusMetrics, process_metrics
from merge_assist.rules import metrics as metrics_port
from merge_assist.rules.events import event_scope
from merge_assist.rules.model import QueueEntry

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.observability")
MAX_ENTRIES_READ = 10_000


def in_event_scope(handle: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Handle each queued event with its event id (set by the webhook) in scope for the logs."""
    def handle_with_id(event: dict[str, Any]) -> None:
        with event_scope(event.get("event_id")):
            handle(event)

    return handle_with_id


def install_process_metrics() -> PrometheusMetrics:
    metrics = process_metrics()
    metrics_port.install(metrics)
    return metrics


def lane_depths(active_entries: list[QueueEntry], now: datetime) -> list[LaneDepth]:
    by_lane: dict[str, list[QueueEntry]] = {}
    for entry in active_entries:
        by_lane.setdefault(str(entry.lane), []).append(entry)
    return [LaneDepth(lane, len(entries), max(0.0, (now - _aware(min(e.enqueued_at for e in entries))).total_seconds()))
            for lane, entries in sorted(by_lane.items())]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def watch_queue(runtime: "Runtime") -> None:
    """Let this process's `/metrics` report the queue per lane and the events waiting, read when scraped."""
    def read() -> list[LaneDepth]:
        entries = runtime.store.queue.all_entries(active_only=True, limit=MAX_ENTRIES_READ)
        return lane_depths(entries, datetime.now(timezone.utc))

    process_metrics().watch_lanes(read)
    process_metrics().watch_events(runtime.queue.backlog)


class _Handler(BaseHTTPRequestHandler):
    server: "WorkerStatusServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, self.server.metrics.render(), CONTENT_TYPE)
        elif path == "/healthz":
            alive = self.server.alive()
            self._json(200 if alive else 503, {"status": "ok" if alive else "worker threads stopped"})
        elif path == "/readyz":
            problems = self.server.problems()
            self._json(503 if problems else 200, {"status": "unavailable" if problems else "ready", "problems": problems})
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, body: dict[str, object]) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        pass  # a probe every few seconds is not worth a log line


class WorkerStatusServer(ThreadingHTTPServer):
    """`/metrics`, `/healthz` (worker threads alive) and `/readyz` (database and queue answer)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, metrics: PrometheusMetrics, alive: Callable[[], bool],
                 problems: Callable[[], list[str]]) -> None:
        super().__init__((host, port), _Handler)
        self.metrics = metrics
        self.alive = alive
        self.problems = problems

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> "WorkerStatusServer":
        threading.Thread(target=self.serve_forever, name="merge-assist-status", daemon=True).start()
        return self


def start_worker_status(runtime: "Runtime", host: str, port: int) -> WorkerStatusServer | None:
    """The worker's status port, when `MERGE_ASSIST_METRICS_PORT` is set (0: none)."""
    if not port:
        return None
    worker = runtime.worker
    server = WorkerStatusServer(host, port, process_metrics(),
                                alive=lambda: worker is not None and worker.alive(),
                                problems=runtime.readiness_problems).start()
    log.info("worker metrics and health on http://%s:%s/metrics", host, server.port)
    return server
