"""Deduplication of webhook deliveries and of commands already carried out.

A key is first *claimed* (a row `claim:<key>`), then marked *done* (a row `<key>`) once handled.
A duplicate that arrives while the first copy is being handled finds the claim and is dropped;
a claim whose holder died goes stale and can be taken over by the redelivery.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from merge_assist.storage.db import Database, affected_rows
from merge_assist.storage.models import WebhookDelivery
from merge_assist.storage.types import utcnow

CLAIM = "claim:"


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def first_time(self, key: str, event: str) -> bool:
        """Record the key; True if it was not seen before (the insert is the lock)."""
        try:
            with self._db.session() as session:
                session.add(WebhookDelivery(key=key[:255], event=event[:64]))
            return True
        except IntegrityError:
            return False

    def seen(self, key: str) -> bool:
        with self._db.session() as session:
            return session.get(WebhookDelivery, key[:255]) is not None

    def claim(self, key: str, event: str, stale_after: float) -> bool:
        """True if this caller may handle `key` now: not done, and not claimed by a live handler."""
        if self.seen(key):
            return False
        claim_key = (CLAIM + key)[:255]
        if self.first_time(claim_key, event):
            return True
        now = utcnow()
        with self._db.session() as session:
            taken = affected_rows(session.execute(update(WebhookDelivery).where(
                WebhookDelivery.key == claim_key,
                WebhookDelivery.received_at < now - timedelta(seconds=stale_after),
            ).values(received_at=now)))
        return bool(taken)

    def release(self, key: str) -> None:
        """Give a claim up (the handler failed), so that a retry may take it at once."""
        with self._db.session() as session:
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.key == (CLAIM + key)[:255]))

    def mark(self, key: str, event: str) -> None:
        """Record a handled delivery; marking twice is fine."""
        self.first_time(key, event)

    def forget_older_than(self, days: int) -> int:
        cutoff = utcnow() - timedelta(days=days)
        with self._db.session() as session:
            return affected_rows(session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff)))
