"""A local fake of Slack on loopback: the Web API (`/api/chat.postMessage`) and response_url
endpoints (`/respond/...`). It records what the bot sends and can answer 500 or hang."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class FakeSlack:
    mode: str = "ok"  # ok | error | hang
    hang_seconds: float = 8.0
    messages: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    def start(self) -> "FakeSlack":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.startswith("/respond"):
                    fake.responses.append(json.loads(body))
                    self._answer(200, {"ok": True})
                    return
                fake.attempts += 1
                if fake.mode == "hang":
                    time.sleep(fake.hang_seconds)
                if fake.mode != "ok":
                    self._answer(500, {"ok": False, "error": "internal_error"})
                    return
                is_json = self.headers.get("Content-Type", "").startswith("application/json")
                payload = json.loads(body) if is_json else {k: v[0] for k, v in parse_qs(body.decode()).items()}
                fake.messages.append(payload)
                self._answer(200, {"ok": True, "channel": payload.get("channel"), "ts": f"{time.time():.6f}"})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def api_url(self) -> str:
        return f"{self.origin}/api/"

    @property
    def response_url(self) -> str:
        return f"{self.origin}/respond/T1/1/abc"

    def stop(self) -> None:
        self.server.shutdown()

    def channel_texts(self, channel: str) -> list[str]:
        return [str(m.get("text", "")) for m in list(self.messages) if m.get("channel") == channel]

    def response_texts(self) -> list[str]:
        return [str(r.get("text", "")) for r in list(self.responses)]
