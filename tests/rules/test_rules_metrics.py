"""The metrics registry and its Prometheus text output."""

from __future__ import annotations

import threading

import pytest

from merge_assist.rules.metrics import REGISTRY, MetricsRegistry


def test_counter_with_labels_renders_in_exposition_format():
    registry = MetricsRegistry()
    errors = registry.counter("merge_assist_plugin_errors_total", "Plugin errors.", ("plugin", "hook"))
    errors.inc(plugin="acme", hook="merge_assist_check_merge")
    errors.inc(2, plugin='we"ird\\', hook="x")
    assert registry.render() == (
        "# HELP merge_assist_plugin_errors_total Plugin errors.\n"
        "# TYPE merge_assist_plugin_errors_total counter\n"
        'merge_assist_plugin_errors_total{plugin="acme",hook="merge_assist_check_merge"} 1\n'
        'merge_assist_plugin_errors_total{plugin="we\\"ird\\\\",hook="x"} 2\n'
    )


def test_histogram_buckets_are_cumulative():
    registry = MetricsRegistry()
    durations = registry.histogram("hook_seconds", "Durations.", ("hook",), buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        durations.observe(value, hook="h")
    lines = registry.render().splitlines()
    assert lines[2:] == [
        'hook_seconds_bucket{hook="h",le="0.1"} 2',
        'hook_seconds_bucket{hook="h",le="1"} 3',
        'hook_seconds_bucket{hook="h",le="+Inf"} 4',
        'hook_seconds_sum{hook="h"} 3.65',
        'hook_seconds_count{hook="h"} 4',
    ]
    assert durations.count(hook="h") == 4


def test_same_name_returns_the_same_metric_and_misuse_is_refused():
    registry = MetricsRegistry()
    assert registry.counter("c", "C.") is registry.counter("c", "C.")
    with pytest.raises(ValueError, match="already registered as a counter"):
        registry.histogram("c", "C.")
    with pytest.raises(ValueError, match="takes labels"):
        registry.counter("d", "D.", ("plugin",)).inc(hook="x")
    with pytest.raises(ValueError, match="only goes up"):
        registry.counter("c", "C.").inc(-1)


def test_counters_are_thread_safe():
    counter = MetricsRegistry().counter("n", "N.")
    threads = [threading.Thread(target=lambda: [counter.inc() for _ in range(2000)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value() == 16000


def test_there_is_a_process_wide_registry():
    assert isinstance(REGISTRY, MetricsRegistry)
