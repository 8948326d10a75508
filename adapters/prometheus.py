"""rules.metrics.Metrics on prometheus_client, plus the per-lane queue gauges read at scrape time.

Each process (`serve`, every `worker`) keeps its own counters and exposes them itself: `serve` on
its `/metrics` route, a worker on `MERGE_ASSIST_METRICS_PORT`. Prometheus scrapes every pod and
sums; no shared multiprocess directory is needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Webhook acknowledgement and hook durations: GitLab wants an answer within seconds."""
WAIT_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
"""Pipeline waits and command-to-merge times: minutes to a day."""
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class LaneDepth:
    lane: str
    entries: int
    oldest_age_seconds: float


class _LaneDepthCollector(Collector):
    """Reads the queue when scraped; the reader is replaced when a new runtime starts."""

    def __init__(self) -> None:
        self.read: Callable[[], Iterable[LaneDepth]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = GaugeMetricFamily("merge_assist_lane_entries", "Active queue entries per lane.", labels=["lane"])
        oldest = GaugeMetricFamily("merge_assist_lane_oldest_entry_age_seconds",
                                   "Age of the oldest active entry per lane.", labels=["lane"])
        for depth in self.read() if self.read is not None else ():
            entries.add_metric([depth.lane], depth.entries)
            oldest.add_metric([depth.lane], depth.oldest_age_seconds)
        yield entries
        yield oldest


class _EventBacklogCollector(Collector):
    """Reads the event queue's backlog when scraped; the reader is replaced when a new runtime starts."""

    def __init__(self) -> None:
        self.read: Callable[[], int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily("merge_assist_events_waiting",
                                    "Webhook and Slack events received and not yet handled "
                                    "(queued, being handled or waiting for a retry).")
        waiting = self.read() if self.read is not None else -1
        if waiting >= 0:  # an unknown backlog (the queue backend away) is left out, not reported as 0
            backlog.add_metric([], waiting)
        yield backlog


class PrometheusMetrics:
    """Every family of the metrics port, registered once in `registry`."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._deliveries = Counter("merge_assist_webhook_deliveries", "GitLab webhook deliveries by kind and outcome.",
                                   ["kind", "outcome"], registry=registry)
        self._ack = Histogram("merge_assist_webhook_ack_seconds", "Time to answer a webhook delivery.",
                              buckets=LATENCY_BUCKETS, registry=registry)
        self._commands = Counter("merge_assist_commands", "Commands carried out, by command and outcome.",
                                 ["command", "outcome"], registry=registry)
        self._merges = Counter("merge_assist_merges", "Merge requests merged, by how (queue or outside).",
                               ["how"], registry=registry)
        self._failures = Counter("merge_assist_failures", "Queue entries that ended failed, by reason.",
                                 ["reason"], registry=registry)
        self._to_merge = Histogram("merge_assist_command_to_merge_seconds", "From the merge command to the merge.",
                                   buckets=WAIT_BUCKETS, registry=registry)
        self._pipeline_wait = Histogram("merge_assist_pipeline_wait_seconds",
                                        "Time an entry waited for its pipeline before merging.",
                                        buckets=WAIT_BUCKETS, registry=registry)
        self._cars = Gauge("merge_assist_train_cars", "Cars in the lane's merge train.", ["lane"], registry=registry)
        self._batches = Counter("merge_assist_train_batches", "Train batches by outcome.", ["outcome"],
                                registry=registry)
        self._gitlab = Counter("merge_assist_gitlab_requests", "GitLab API calls by endpoint template and status.",
                               ["method", "endpoint", "status"], registry=registry)
        self._plugin_errors = Counter("merge_assist_plugin_errors", "Exceptions raised by plugin hook implementations.",
                                      ["plugin", "hook"], registry=registry)
        self._hook_seconds = Histogram("merge_assist_hook_duration_seconds", "Time spent in one plugin's hook.",
                                       ["hook"], buckets=LATENCY_BUCKETS, registry=registry)
        self._slack = Counter("merge_assist_slack_failures", "Slack calls that failed, by operation.",
                              ["operation"], registry=registry)
        self._takeovers = Counter("merge_assist_lease_takeovers", "Lane leases taken over after they expired.",
                                  ["lane"], registry=registry)
        self._slack_sent = Counter("merge_assist_slack_messages", "Slack messages sent through the Web API.",
                                   registry=registry)
        self._slack_dropped = Counter("merge_assist_slack_messages_dropped", "Slack messages given up on, by reason.",
                                      ["reason"], registry=registry)
        self._slack_responses = Counter("merge_assist_slack_responses",
                                        "Answers to slash commands through response_url, by outcome.", ["outcome"],
                                        registry=registry)
        self._dead_letters = Counter("merge_assist_dead_letters",
                                     "Events set aside unhandled: poison after one try, or still failing after many.",
                                     ["cause"], registry=registry)
        self._lanes = _LaneDepthCollector()
        registry.register(self._lanes)
        self._events = _EventBacklogCollector()
        registry.register(self._events)

    def watch_lanes(self, read: Callable[[], Iterable[LaneDepth]]) -> None:
        """Report queue length and oldest entry age per lane from `read` at each scrape."""
        self._lanes.read = read

    def watch_events(self, read: Callable[[], int]) -> None:
        """Report the event queue's backlog from `read` (negative: unknown) at each scrape."""
        self._events.read = read

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def webhook_delivery(self, kind: str, outcome: str) -> None:
        self._deliveries.labels(kind, outcome).inc()

    def webhook_acknowledged(self, seconds: float) -> None:
        self._ack.observe(seconds)

    def command(self, name: str, outcome: str) -> None:
        self._commands.labels(name, outcome).inc()

    def merged(self, how: str) -> None:
        self._merges.labels(how).inc()

    def failed(self, reason: str) -> None:
        self._failures.labels(reason).inc()

    def command_to_merge(self, seconds: float) -> None:
        self._to_merge.observe(seconds)

    def pipeline_wait(self, seconds: float) -> None:
        self._pipeline_wait.observe(seconds)

    def train_cars(self, lane: str, cars: int) -> None:
        self._cars.labels(lane).set(cars)

    def train_batch(self, outcome: str) -> None:
        self._batches.labels(outcome).inc()

    def gitlab_call(self, method: str, endpoint: str, status: str) -> None:
        self._gitlab.labels(method, endpoint, status).inc()

    def plugin_error(self, plugin: str, hook: str) -> None:
        self._plugin_errors.labels(plugin, hook).inc()

    def hook_duration(self, hook: str, seconds: float) -> None:
        self._hook_seconds.labels(hook).observe(seconds)

    def slack_failure(self, operation: str) -> None:
        self._slack.labels(operation).inc()

    def lease_takeover(self, lane: str) -> None:
        self._takeovers.labels(lane).inc()

    def slack_message_sent(self) -> None:
        self._slack_sent.inc()

    def slack_message_dropped(self, reason: str) -> None:
        self._slack_dropped.labels(reason).inc()

    def slack_response(self, outcome: str) -> None:
        self._slack_responses.labels(outcome).inc()

    def dead_letter(self, cause: str) -> None:
        self._dead_letters.labels(cause).inc()


_PROCESS_METRICS: PrometheusMetrics | None = None
_LOCK = threading.Lock()


def process_metrics() -> PrometheusMetrics:
    """The metrics of this process, in prometheus_client's default registry (created once)."""
    global _PROCESS_METRICS
    with _LOCK:
        if _PROCESS_METRICS is None:
            _PROCESS_METRICS = PrometheusMetrics()
        return _PROCESS_METRICS
