"""A tiny thread-safe metrics registry rendering the Prometheus text exposition format.

No third-party dependency: the rules engine only needs labelled counters and one kind of
histogram, and `GET /metrics` only needs the text format (version 0.0.4).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from typing import Iterable

LabelValues = tuple[str, ...]

DEFAULT_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [f'{name}="{_escape_label_value(value)}"' for name, value in zip(names, values)]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str]) -> None:
        self.name = name
        self.help_text = help_text
        self.labelnames: tuple[str, ...] = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labelnames)

    def header(self) -> list[str]:
        help_text = self.help_text.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [
            f"{self.name}{_format_labels(self.labelnames, key)} {_format_number(value)}"
            for key, value in items
        ]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labelnames: Iterable[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        # Per label set: one count per bucket (non-cumulative) + the +Inf overflow, and the sum.
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        slot = bisect_left(self.buckets, value)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            counts[slot] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        with self._lock:
            return sum(self._counts.get(self._key(labels), ()))

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((key, list(counts), self._sums[key]) for key, counts in self._counts.items())
        lines: list[str] = []
        bucket_labelnames = self.labelnames + ("le",)
        for key, counts, total in items:
            running = 0
            for bound, count in zip(self.buckets + (math.inf,), counts):
                running += count
                labels = _format_labels(bucket_labelnames, key + (_format_number(bound),))
                lines.append(f"{self.name}_bucket{labels} {running}")
            labels = _format_labels(self.labelnames, key)
            lines.append(f"{self.name}_sum{labels} {_format_number(total)}")
            lines.append(f"{self.name}_count{labels} {running}")
        return lines


class MetricsRegistry:
    """Holds metrics by name; asking twice for the same name returns the same metric."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def counter(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Counter:
        return self._get_or_create(Counter, name, help_text, labelnames)

    def histogram(
        self, name: str, help_text: str, labelnames: Iterable[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        return self._get_or_create(Histogram, name, help_text, labelnames, buckets)

    def _get_or_create(self, kind: type, name: str, help_text: str, labelnames: Iterable[str],
                       *extra: object):
        with self._lock:
            existing = self._metrics.get(name)
            if existing is None:
                existing = kind(name, help_text, labelnames, *extra)
                self._metrics[name] = existing
            elif not isinstance(existing, kind):
                raise ValueError(f"metric {name} is already registered as a {existing.kind}")
            return existing

    def render(self) -> str:
        """The whole registry in Prometheus text exposition format."""
        with self._lock:
            metrics = sorted(self._metrics.values(), key=lambda metric: metric.name)
        lines: list[str] = []
        for metric in metrics:
            lines += metric.header() + metric.samples()
        return "\n".join(lines) + "\n" if lines else ""


REGISTRY = MetricsRegistry()
"""The process-wide default registry served at `GET /metrics`."""
