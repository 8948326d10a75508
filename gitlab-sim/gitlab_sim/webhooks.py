"""Webhook delivery: GitLab's headers, retries with one Idempotency-Key, a delivery log.

Each hook gets its own worker thread so a dead receiver only delays its own events,
and events to one receiver arrive in the order they happened. A delivery is retried
on a non-2xx answer or a connection error, with a short backoff, a bounded number of
times; every attempt is logged. ``resend`` re-delivers a past event with the same
``Idempotency-Key`` (like "Resend request" in GitLab's UI) so receivers can test dedupe.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

USER_AGENT = "GitLab/17.6.0"
EVENT_HEADERS = {
    "note": "Note Hook",
    "merge_request": "Merge Request Hook",
    "pipeline": "Pipeline Hook",
    "job": "Job Hook",
    "push": "Push Hook",
}


@dataclass
class Delivery:
    """One event for one hook; may take several attempts."""

    id: int
    hook_id: int
    url: str
    token: str | None
    event: str  # key of EVENT_HEADERS
    payload: dict[str, Any]
    idempotency_key: str
    event_uuid: str

    @property
    def header_event(self) -> str:
        return EVENT_HEADERS[self.event]


@dataclass(frozen=True)
class DeliveryAttempt:
    delivery_id: int
    hook_id: int
    event: str
    url: str
    attempt: int
    status: int | None  # None: connection error or timeout
    response_body: str
    error: str | None
    duration: float
    idempotency_key: str
    timestamp: float


@dataclass
class WebhookSettings:
    max_attempts: int = 4
    backoff: float = 0.05  # real seconds; doubles per retry
    timeout: float = 10.0
    instance_url: str = "http://127.0.0.1"


@dataclass
class _HookWorker:
    inbox: queue.Queue[Delivery | None] = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None


class WebhookDispatcher:
    """Queues deliveries per hook and records every attempt."""

    def __init__(self, settings: WebhookSettings | None = None) -> None:
        self.settings = settings or WebhookSettings()
        self._lock = threading.Lock()
        self._deliveries: dict[int, Delivery] = {}
        self._attempts: list[DeliveryAttempt] = []
        self._workers: dict[int, _HookWorker] = {}
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._client = httpx.Client(timeout=self.settings.timeout)
        self._stopping = threading.Event()
        self._next_id = 1

    def enqueue(self, hook_id: int, url: str, token: str | None, event: str,
                payload: dict[str, Any], event_uuid: str | None = None) -> Delivery:
        with self._lock:
            delivery = Delivery(self._next_id, hook_id, url, token, event, payload,
                                str(uuid.uuid4()), event_uuid or str(uuid.uuid4()))
            self._next_id += 1
            self._deliveries[delivery.id] = delivery
        self._submit(delivery)
        return delivery

    def resend(self, delivery_id: int) -> Delivery:
        """Deliver the same event again, keeping its Idempotency-Key."""
        with self._lock:
            delivery = self._deliveries[delivery_id]
        self._submit(delivery)
        return delivery

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries.values())

    def attempts(self) -> list[DeliveryAttempt]:
        with self._lock:
            return list(self._attempts)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or being delivered."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.inbox.put(None)
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(timeout=5)
        self._client.close()

    # -- internals ------------------------------------------------------------
    def _submit(self, delivery: Delivery) -> None:
        with self._lock:
            self._in_flight += 1
            worker = self._workers.get(delivery.hook_id)
            if worker is None:
                worker = _HookWorker()
                worker.thread = threading.Thread(target=self._work, args=(worker,),
                                                 name=f"webhook-{delivery.hook_id}", daemon=True)
                self._workers[delivery.hook_id] = worker
                worker.thread.start()
        worker.inbox.put(delivery)

    def _work(self, worker: _HookWorker) -> None:
        while True:
            delivery = worker.inbox.get()
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def _deliver(self, delivery: Delivery) -> None:
        body = json.dumps(delivery.payload).encode()
        for attempt in range(1, self.settings.max_attempts + 1):
            if attempt > 1 and self._stopping.wait(self.settings.backoff * 2 ** (attempt - 2)):
                return  # the simulator is shutting down: no more retries
            record = self._attempt(delivery, body, attempt)
            with self._lock:
                self._attempts.append(record)
            if record.status is not None and 200 <= record.status < 300:
                return

    def _attempt(self, delivery: Delivery, body: bytes, attempt: int) -> DeliveryAttempt:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Gitlab-Event": delivery.header_event,
            "X-Gitlab-Event-UUID": delivery.event_uuid,
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "X-Gitlab-Instance": self.settings.instance_url,
            "Idempotency-Key": delivery.idempotency_key,
        }
        if delivery.token:
            headers["X-Gitlab-Token"] = delivery.token.replace("\n", "")
        started = time.monotonic()
        status: int | None = None
        text, error = "", None
        try:
            response = self._client.post(delivery.url, content=body, headers=headers)
            status, text = response.status_code, response.text[:8192]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return DeliveryAttempt(delivery.id, delivery.hook_id, delivery.header_event, delivery.url,
                               attempt, status, text, error, time.monotonic() - started,
                               delivery.idempotency_key, time.time())
