"""The metrics port: what Merge Assist counts, independent of how it is exported.

Code anywhere calls the process-wide `METRICS` object; `bot.runtime` installs the
prometheus_client implementation (`adapters.prometheus.PrometheusMetrics`) when a process
starts. Until then every call is a no-op, so `rules` stays importable and testable without
prometheus_client; tests pass or install a `RecordingMetrics` to see what was counted.

The API (one call per fact; labels are short, bounded words, never free text or user input):

    METRICS.webhook_delivery(kind, outcome)     merge_assist_webhook_deliveries_total{kind,outcome}
    METRICS.webhook_acknowledged(seconds)       merge_assist_webhook_ack_seconds (histogram)
    METRICS.command(name, outcome)              merge_assist_commands_total{command,outcome}
    METRICS.merged(how)                         merge_assist_merges_total{how}   how: queue | outside
    METRICS.failed(reason)                      merge_assist_failures_total{reason}
    METRICS.command_to_merge(seconds)           merge_assist_command_to_merge_seconds (histogram)
    METRICS.pipeline_wait(seconds)              merge_assist_pipeline_wait_seconds (histogram)
    METRICS.train_cars(lane, cars)              merge_assist_train_cars{lane} (gauge)
    METRICS.train_batch(outcome)                merge_assist_train_batches_total{outcome}
    METRICS.gitlab_call(method, endpoint, status)  merge_assist_gitlab_requests_total{method,endpoint,status}
    METRICS.plugin_error(plugin, hook)          merge_assist_plugin_errors_total{plugin,hook}
    METRICS.hook_duration(hook, seconds)        merge_assist_hook_duration_seconds{hook} (histogram)
    METRICS.slack_failure(operation)            merge_assist_slack_failures_total{operation}
    METRICS.slack_message_sent()                merge_assist_slack_messages_total
    METRICS.slack_message_dropped(reason)       merge_assist_slack_messages_dropped_total{reason}
    METRICS.slack_response(outcome)             merge_assist_slack_responses_total{outcome}
    METRICS.dead_letter(cause)                  merge_assist_dead_letters_total{cause}   cause: poison | retries
    METRICS.lease_takeover(lane)                merge_assist_lease_takeovers_total{lane}

`lane` is `LaneKey.__str__` (project id and branch). Queue length and oldest entry age per lane
(`merge_assist_lane_entries`, `merge_assist_lane_oldest_entry_age_seconds`) are not pushed from
here: the `serve` process reads them from the database when scraped, so that several workers
never report different values for one lane.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, cast


class Metrics(Protocol):
    def webhook_delivery(self, kind: str, outcome: str) -> None: ...

    def webhook_acknowledged(self, seconds: float) -> None: ...

    def command(self, name: str, outcome: str) -> None: ...

    def merged(self, how: str) -> None: ...

    def failed(self, reason: str) -> None: ...

    def command_to_merge(self, seconds: float) -> None: ...

    def pipeline_wait(self, seconds: float) -> None: ...

    def train_cars(self, lane: str, cars: int) -> None: ...

    def train_batch(self, outcome: str) -> None: ...

    def gitlab_call(self, method: str, endpoint: str, status: str) -> None: ...

    def plugin_error(self, plugin: str, hook: str) -> None: ...

    def hook_duration(self, hook: str, seconds: float) -> None: ...

    def slack_failure(self, operation: str) -> None: ...

    def lease_takeover(self, lane: str) -> None: ...

    def slack_message_sent(self) -> None: ...

    def slack_message_dropped(self, reason: str) -> None: ...

    def slack_response(self, outcome: str) -> None: ...

    def dead_letter(self, cause: str) -> None: ...


METRIC_CALLS = frozenset(name for name in vars(Metrics) if not name.startswith("_"))


class RecordingMetrics:
    """Keeps every call in memory: the no-op default's sibling, for tests and inspection."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in METRIC_CALLS:
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, args))

    def count(self, name: str, *args: Any) -> int:
        """How many calls of `name` had arguments starting with `args`."""
        return sum(1 for call, values in self.calls if call == name and values[:len(args)] == args)


class _NullMetrics:
    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in METRIC_CALLS:
            raise AttributeError(name)
        return lambda *args: None


class _Installed:
    """Forwards to whichever implementation is installed, so callers can bind it at import time."""

    def __init__(self) -> None:
        self.target: Any = _NullMetrics()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


_CURRENT = _Installed()
METRICS: Metrics = cast(Metrics, _CURRENT)
"""The process-wide metrics; a no-op until `install` is called."""


def install(metrics: Metrics) -> None:
    _CURRENT.target = metrics


def installed() -> Metrics:
    return cast(Metrics, _CURRENT.target)
