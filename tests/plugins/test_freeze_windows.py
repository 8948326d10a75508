"""Freeze windows: parsing, time zones, an injected `now`, and the lane holding (WAIT)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from merge_assist.plugins.freeze import FreezeWindow, parse_window
from merge_assist.rules.hookspecs import OptionError
from merge_assist.rules.model import Outcome
from merge_assist.plugins import freeze

UTC = timezone.utc
WEEKEND = "Friday 13:00 - Monday 09:00"
BERLIN = {"windows": [WEEKEND], "timezone": "Europe/Berlin"}


@pytest.mark.parametrize("text", [
    "Friday 13:00 - Monday 09:00", "Friday 1pm - Monday 9am", "fri 1PM-mon 9:00am", "  friday 13 - monday 9am ",
])
def test_both_window_notations_mean_the_same(text):
    window = parse_window(text)
    assert (window.start, window.end) == (4 * 1440 + 13 * 60, 9 * 60)


@pytest.mark.parametrize("text, reason", [
    ("Funday 1pm - Monday 9am", "unknown day 'funday'"),
    ("Friday 25:00 - Monday 9am", "not a valid time"),
    ("Friday 13pm - Monday 9am", "hour 13 is not valid with pm"),
    ("Friday 1pm", "<day> <time> - <day> <time>"),
    ("Friday 1pm - Friday 13:00", "must not start and end at the same time"),
    ("Friday noon - Monday 9am", "cannot read 'Friday noon'"),
])
def test_bad_windows_are_rejected_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_window(text)


def test_validator_names_the_bad_window_and_time_zone():
    validate = freeze.merge_assist_describe_rule().validate
    with pytest.raises(OptionError) as caught:
        validate({"windows": [WEEKEND, "Sunday 25:00 - Monday 1am"]})
    assert caught.value.key == "windows[1]"
    with pytest.raises(OptionError, match="unknown time zone 'Mars/Olympus'"):
        validate({"timezone": "Mars/Olympus"})


def freeze_verdict(engine, make_context, now: datetime, options: dict):
    decision = engine.check_merge(make_context(now=now), {"freeze": options})
    [verdict] = [v for v in decision.verdicts if v.rule == "freeze"]
    return verdict


@pytest.mark.parametrize("now, options, expected", [
    # Friday 12:30 UTC is 13:30 in Berlin (CET, UTC+1): frozen there, not yet in UTC.
    (datetime(2026, 11, 27, 12, 30, tzinfo=UTC), BERLIN, "merge freeze until Monday 2026-11-30 09:00 CET"),
    (datetime(2026, 11, 27, 12, 30, tzinfo=UTC), {"windows": [WEEKEND]}, None),
    (datetime(2026, 11, 27, 11, 59, tzinfo=UTC), BERLIN, None),
    (datetime(2026, 11, 29, 23, 0, tzinfo=UTC), BERLIN, "until Monday 2026-11-30 09:00 CET"),
    (datetime(2026, 11, 30, 7, 59, 59, tzinfo=UTC), BERLIN, "until Monday 2026-11-30 09:00 CET"),
    (datetime(2026, 11, 30, 8, 0, tzinfo=UTC), BERLIN, None),
    # A window within one day, and several windows of which one applies.
    (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), {"windows": ["Wed 9am - Wed 11am"]}, "until Wednesday 2026-11-25 11:00 UTC"),
    (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), {"windows": [WEEKEND, "Wed 9am - Wed 11am"]}, "11:00 UTC"),
    # Touching windows are followed through to the real end.
    (datetime(2026, 11, 27, 14, 0, tzinfo=UTC),
     {"windows": ["Friday 13:00 - Saturday 00:00", "Saturday 0:00 - Monday 9am"]}, "until Monday 2026-11-30 09:00 UTC"),
    # US daylight saving ends on Sunday 2026-11-01: the window still ends at 03:00 wall time.
    (datetime(2026, 10, 31, 16, 0, tzinfo=UTC),
     {"windows": ["Saturday 1am - Sunday 3am"], "timezone": "America/New_York"}, "until Sunday 2026-11-01 03:00 EST"),
])
def test_freeze_holds_the_lane_in_the_windows_time_zone(engine, make_context, now, options, expected):
    verdict = freeze_verdict(engine, make_context, now, options)
    if expected is None:
        assert verdict.outcome is Outcome.PASS
    else:
        assert verdict.outcome is Outcome.WAIT and expected in verdict.reason


def test_queueing_is_allowed_during_a_freeze(engine, make_context):
    frozen = make_context(now=datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    assert engine.check_enqueue(frozen, {"freeze": BERLIN}).outcome is Outcome.PASS
    assert engine.check_merge(frozen, {"freeze": BERLIN}).outcome is Outcome.WAIT


def test_window_containment_wraps_over_the_week_end():
    window = FreezeWindow(start=6 * 1440, end=60, text="Sunday 0:00 - Monday 1am")
    assert window.contains(6 * 1440 + 5) and window.contains(0) and not window.contains(60)
