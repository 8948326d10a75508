"""The Starlette application: health, readiness, metrics, and the routes of each face."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from merge_assist.adapters.prometheus import CONTENT_TYPE, process_metrics
from merge_assist.bot.observability import watch_queue

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.web")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    problems = runtime.readiness_problems()
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(_request: Request) -> Response:
    return Response(process_metrics().render(), headers={"Content-Type": CONTENT_TYPE})


async def _server_error(request: Request, exc: Exception) -> Response:
    # The default debug page would show locals and settings; answer without any detail instead.
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"error": "internal error"}, status_code=500)


def create_app(runtime: "Runtime") -> Starlette:
    from merge_assist.bot.admin import admin_routes, configure_admin
    from merge_assist.bot.slack import slack_routes
    from merge_assist.bot.webhook import webhook_routes

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *webhook_routes(),
        *slack_routes(runtime),
        *admin_routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    watch_queue(runtime)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={500: _server_error})
    app.state.runtime = runtime
    configure_admin(app.state, runtime)
    return app
