"""Later answers to a slash command through its `response_url`, only to Slack's own hosts.

A `response_url` takes 5 answers within 30 minutes; each command answers once. An answer that
would come too late goes as a direct message through the Web API when a bot token is set, else it
is logged.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx

from merge_assist.bot.slack_text import http_parts
from merge_assist.rules.metrics import METRICS

log = logging.getLogger("merge_assist.slack")
SLACK_ORIGINS = ("https://hooks.slack.com",)
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60
MAX_TEXT = 3900


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL without credentials; None for anything else."""
    parts = http_parts(url)
    if parts is None or "@" in parts[1]:
        return None
    return f"{parts[0]}://{parts[1]}"


class SlackResponder:
    def __init__(self, origins: tuple[str, ...] = SLACK_ORIGINS, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 direct_message: Callable[[str, str], None] | None = None) -> None:
        self._origins = frozenset(origin.lower().rstrip("/") for origin in origins)
        self._timeout = timeout
        self._clock = clock
        self._direct_message = direct_message
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="merge-assist-slack-respond")

    def respond_later(self, response_url: str | None, text: str, received_at: float | None = None,
                      slack_user_id: str | None = None) -> None:
        """`respond` on a small pool of its own: a slow or dead Slack never holds a worker thread
        that lanes and other commands need."""
        self._pool.submit(self.respond, response_url, text, received_at, slack_user_id)

    def allowed(self, response_url: str) -> bool:
        return origin_of(response_url) in self._origins

    def respond(self, response_url: str | None, text: str, received_at: float | None = None,
                slack_user_id: str | None = None) -> bool:
        """Post an ephemeral answer; never raises (a bad URL or a Slack outage is logged)."""
        if not response_url or not self.allowed(response_url):
            METRICS.slack_response("refused_url")
            log.warning("not answering: response_url is not a Slack URL")
            return False
        if received_at is not None and self._clock() - received_at > RESPONSE_URL_LIFETIME_SECONDS:
            METRICS.slack_response("expired")
            if self._direct_message is not None and slack_user_id:
                self._direct_message(slack_user_id, text)
            else:
                log.warning("not answering: the command's response_url has expired")
            return False
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + "…"
        try:
            answer = httpx.post(response_url, json={"response_type": "ephemeral", "text": text},
                                timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to answer must not fail the command
            METRICS.slack_response("error")
            METRICS.slack_failure("respond")
            log.warning("could not answer on Slack: %s", type(exc).__name__)
            return False
        ok = answer.status_code < 400
        METRICS.slack_response("ok" if ok else "rejected")
        if not ok:
            METRICS.slack_failure("respond")
            log.warning("Slack refused the answer: HTTP %s", answer.status_code)
        return ok
