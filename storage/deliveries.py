"""Deduplication of webhook deliveries and of commands already carried out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import WebhookDelivery
from storage.types import utcnow


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

    def mark(self, key: str, event: str) -> None:
        """Record a handled delivery; marking twice is fine."""
        self.first_time(key, event)

    def forget_older_than(self, days: int) -> int:
        cutoff = utcnow() - timedelta(days=days)
        with self._db.session() as session:
            return session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < cutoff)).rowcount
