"""Constant-time checks of `X-Gitlab-Token`: the global secret or a project's own secret."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from bot.settings import Secret
from storage.projects import ProjectRepository

REFRESH_SECONDS = 30.0


class WebhookAuth:
    """Project secrets are cached as SHA-256 digests and refreshed every 30 s, off the hot path."""

    def __init__(self, global_secret: Secret | None, projects: ProjectRepository) -> None:
        self._global = hashlib.sha256(global_secret.reveal().encode()).digest() if global_secret else None
        self._projects = projects
        self._digests: dict[int, bytes] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _project_digest(self, project_id: int) -> bytes | None:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            with self._lock:
                self._digests = {pid: bytes.fromhex(d) for pid, d in self._projects.secret_digests().items()}
                self._loaded_at = time.monotonic()
        return self._digests.get(project_id)

    def accepts(self, token: str | None, project_id: int | None) -> bool:
        if not token:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        if self._global is not None and hmac.compare_digest(digest, self._global):
            return True
        own = self._project_digest(project_id) if project_id is not None else None
        return own is not None and hmac.compare_digest(digest, own)

    def accepts_global(self, token: str | None) -> bool:
        return self.accepts(token, None)

    def refresh(self) -> None:
        self._loaded_at = float("-inf")
