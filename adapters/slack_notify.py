"""Messages to Slack channels and users through the Web API, sent by a background thread.

`send` only puts the message on a bounded in-memory queue, so a Slack outage never blocks a merge:
the sender retries with backoff (slack_sdk's retry handlers for connection errors, 429 and 5xx,
then its own attempts), then drops the message with a log line and a metric.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from merge_assist.rules.metrics import METRICS

log = logging.getLogger("merge_assist.slack.notify")


@dataclass(frozen=True)
class SlackMessage:
    channel: str  # a channel id or name, or a user id for a direct message
    text: str


def web_client(token: str, base_url: str, timeout: float = 5.0) -> WebClient:
    return WebClient(token=token, base_url=base_url.rstrip("/") + "/", timeout=int(max(timeout, 1)),
                     retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1),
                                     RateLimitErrorRetryHandler(max_retry_count=2),
                                     ServerErrorRetryHandler(max_retry_count=1)])


class SlackSender:
    """One daemon thread posting queued messages with `chat.postMessage`."""

    def __init__(self, client: WebClient, *, attempts: int = 4, backoff_seconds: float = 1.0,
                 capacity: int = 1000, sleep: Callable[[float], bool] | None = None) -> None:
        self._client = client
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._queue: queue.Queue[SlackMessage | None] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._thread: threading.Thread | None = None

    def send(self, channel: str, text: str) -> None:
        """Queue a message; never blocks and never raises."""
        try:
            self._queue.put_nowait(SlackMessage(channel, text))
        except queue.Full:
            METRICS.slack_message_dropped("queue_full")
            log.warning("Slack message to %s dropped: %d messages already waiting", channel, self._queue.qsize())

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="merge-assist-slack-sender", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._stopping.set()
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            message = self._queue.get()
            if message is not None:
                self._deliver(message)

    def _deliver(self, message: SlackMessage) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                self._client.chat_postMessage(channel=message.channel, text=message.text)
            except Exception as exc:  # noqa: BLE001 - slack_sdk raises several kinds; all mean "not sent"
                log.info("Slack message to %s not sent (attempt %d of %d): %s",
                         message.channel, attempt, self._attempts, type(exc).__name__)
                if attempt < self._attempts and self._sleep(self._backoff * 2 ** (attempt - 1)):
                    break  # stopping
                continue
            METRICS.slack_message_sent()
            return
        METRICS.slack_message_dropped("undeliverable")
        METRICS.slack_failure("notify")
        log.warning("Slack message to %s dropped after %d attempts", message.channel, self._attempts)
