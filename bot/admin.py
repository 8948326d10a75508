"""Admin faces: the versioned JSON API (`/api/v1/...`, JWT) and the dashboard at `/`.

Routes are declared as data (`ApiRoute`: method, path, handler, permission, project scope); the
app serves them through one frame (`admin_http.endpoint`) and the OpenAPI description is
generated from the same table.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from starlette.datastructures import State
from starlette.routing import BaseRoute, Route

from merge_assist.bot.admin_accounts import ACCOUNT_ROUTES
from merge_assist.bot.admin_http import ApiRoute, Call, endpoint
from merge_assist.bot.admin_lanes import DetailsCache
from merge_assist.bot.admin_openapi import build_openapi
from merge_assist.bot.admin_queue import QUEUE_ROUTES
from merge_assist.bot.admin_tokens import TokenService

if TYPE_CHECKING:
    from merge_assist.bot.runtime import Runtime

log = logging.getLogger("merge_assist.admin")


def openapi(_call: Call) -> dict[str, Any]:
    return build_openapi(API_ROUTES)


API_ROUTES: tuple[ApiRoute, ...] = (
    *ACCOUNT_ROUTES,
    *QUEUE_ROUTES,
    ApiRoute("GET", "/api/v1/openapi.json", openapi, None, "This description"),
)


def configure_admin(state: State, runtime: "Runtime") -> None:
    """Token signing and the MR details cache, shared by every admin request of this app."""
    secret = runtime.settings.jwt_secret
    if secret is None:
        # Only embedded single-process serving gets here (`serve` refuses otherwise): tokens then
        # end with the process, which is acceptable for a laptop and nowhere else.
        log.warning("MERGE_ASSIST_JWT_SECRET is not set: admin tokens are signed with a per-process key")
    state.tokens = TokenService(secret.reveal() if secret is not None else secrets.token_urlsafe(48))
    state.details = DetailsCache()


def admin_routes() -> list[BaseRoute]:
    from merge_assist.bot.dashboard import dashboard_routes

    return [Route(r.path, endpoint(r), methods=[r.method]) for r in API_ROUTES] + dashboard_routes()
