"""Constant-time checks of `X-Gitlab-Token`: the global secret or a project's own secret.

Project secrets are kept as SHA-256 digests in memory and reloaded from the database every
30 seconds by a background thread, so checking a delivery never waits on the database.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading

from merge_assist.bot.settings import Secret
from merge_assist.storage.projects import ProjectRepository

log = logging.getLogger("merge_assist.webhook")
REFRESH_SECONDS = 30.0


class WebhookAuth:
    def __init__(self, global_secret: Secret | None, projects: ProjectRepository) -> None:
        self._global = hashlib.sha256(global_secret.reveal().encode()).digest() if global_secret else None
        self._projects = projects
        self._digests: dict[int, bytes] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    def refresh(self) -> None:
        """Reload the project secrets now (after an admin registered one, and periodically)."""
        try:
            digests = {pid: bytes.fromhex(d) for pid, d in self._projects.secret_digests().items()}
        except Exception as exc:  # the database may be away; keep checking with what we have
            log.warning("cannot reload project webhook secrets: %s", type(exc).__name__)
            return
        self._digests = digests

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._refresh_loop, name="merge-assist-secrets", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _refresh_loop(self) -> None:
        while not self._stopping.wait(REFRESH_SECONDS):
            self.refresh()

    def may_accept(self, token: str | None) -> bool:
        """Whether the token is the global secret or some project's: checked before the body is read."""
        if not token:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        if self._global is not None and hmac.compare_digest(digest, self._global):
            return True
        # Compare with every digest (no early exit) so the time taken says nothing about which matched.
        matches = [hmac.compare_digest(digest, own) for own in list(self._digests.values())]
        return any(matches)

    def accepts(self, token: str | None, project_id: int | None) -> bool:
        if not token:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        if self._global is not None and hmac.compare_digest(digest, self._global):
            return True
        own = self._digests.get(project_id) if project_id is not None else None
        return own is not None and hmac.compare_digest(digest, own)
