"""Rule `freeze`: no merges during weekly freeze windows (like marge-bot's `--embargo`).

Windows are written "Friday 13:00 - Monday 09:00" or "Friday 1pm - Monday 9am" and read in
the rule's `timezone`. During a window the lane holds (WAIT) and keeps its entries; queueing
is still allowed, so the queue is ready when the window ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from merge_assist.rules.hookspecs import OptionError, RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "freeze"

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_POINT = re.compile(
    r"^(?P<day>[a-z]+)\s+(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<meridiem>am|pm)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FreezeWindow:
    """A weekly window; start and end are minutes since Monday 00:00 local time."""

    start: int
    end: int
    text: str

    def contains(self, minute_of_week: int) -> bool:
        if self.start < self.end:
            return self.start <= minute_of_week < self.end
        return minute_of_week >= self.start or minute_of_week < self.end  # wraps over Sunday


def _parse_day(word: str) -> int:
    word = word.lower()
    matches = [index for index, day in enumerate(DAYS) if len(word) >= 3 and day.startswith(word)]
    if len(matches) != 1:
        raise ValueError(f"unknown day {word!r}")
    return matches[0]


def _parse_point(text: str) -> int:
    match = _POINT.match(text.strip())
    if not match:
        raise ValueError(f"cannot read {text.strip()!r}; write e.g. 'Friday 13:00' or 'Friday 1pm'")
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    meridiem = (match["meridiem"] or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} is not valid with {meridiem}")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"{text.strip()!r} is not a valid time")
    return _parse_day(match["day"]) * MINUTES_PER_DAY + hour * 60 + minute


def parse_window(text: str) -> FreezeWindow:
    """Parse "Friday 13:00 - Monday 09:00"; raises ValueError with a readable reason."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError("write a window as '<day> <time> - <day> <time>'")
    start, end = _parse_point(parts[0]), _parse_point(parts[1])
    if start == end:
        raise ValueError("a window must not start and end at the same time")
    return FreezeWindow(start, end, text.strip())


def _minute_of_week(moment: datetime) -> int:
    return moment.weekday() * MINUTES_PER_DAY + moment.hour * 60 + moment.minute


def freeze_ends_at(windows: list[FreezeWindow], now: datetime, zone: ZoneInfo) -> datetime | None:
    """When merging is allowed again (local time), or None when `now` is outside every window.

    Windows that overlap or touch are followed through, so "until" is the real end.
    """
    local_now = now.astimezone(zone).replace(second=0, microsecond=0)
    cursor = _minute_of_week(local_now)
    waited = 0
    for _ in range(len(windows)):
        covering = [window for window in windows if window.contains(cursor)]
        if not covering:
            break
        step = max((window.end - cursor) % MINUTES_PER_WEEK for window in covering)
        waited += step
        cursor = (cursor + step) % MINUTES_PER_WEEK
    if waited == 0:
        return None
    # Wall-clock arithmetic on purpose: "Monday 09:00" stays 09:00 across a DST change.
    return local_now + timedelta(minutes=waited)


def _validate(options: Mapping[str, Any]) -> None:
    for index, text in enumerate(options.get("windows", [])):
        try:
            parse_window(text)
        except ValueError as exc:
            raise OptionError(f"windows[{index}]", str(exc)) from None
    if "timezone" in options:
        try:
            ZoneInfo(options["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise OptionError("timezone", f"unknown time zone {options['timezone']!r}") from None


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(
        RULE,
        "No merges during freeze windows; the queue holds and merges when the window ends.",
        defaults={"windows": [], "timezone": "UTC"},
        option_help={
            "windows": "weekly windows, e.g. [\"Friday 13:00 - Monday 09:00\"] or [\"Friday 1pm - Monday 9am\"]",
            "timezone": "IANA time zone the windows are read in, e.g. \"Europe/Berlin\"",
        },
        validate=_validate,
    )


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    windows = [parse_window(text) for text in context.options.get("windows", [])]
    zone = ZoneInfo(context.options.get("timezone", "UTC"))
    until = freeze_ends_at(windows, context.now, zone)
    if until is None:
        return Verdict.passed(RULE)
    return Verdict.wait(RULE, f"merge freeze until {until:%A %Y-%m-%d %H:%M} {until.tzname()}")
