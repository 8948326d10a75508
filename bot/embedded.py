"""Run the web app in a background thread (the demo and the end-to-end tests use it)."""

from __future__ import annotations

import threading
import time

import uvicorn

from merge_assist.bot.app import create_app
from merge_assist.bot.runtime import Runtime


class BackgroundServer:
    """uvicorn serving a Runtime's app on a thread; `url` is set once it listens."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0) -> None:
        self.runtime = runtime
        config = uvicorn.Config(create_app(runtime), host=host, port=port, log_level="warning",
                                access_log=False, lifespan="on", log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="merge-assist-http", daemon=True)
        self._host = host
        self.url = ""

    def start(self, timeout: float = 15.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web server did not start (is the port free?)")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
