"""Hypothesis fuzzing of the admin API: random JSON bodies and path values on every route the
OpenAPI description lists, as an admin and unauthenticated. No answer may be a 5xx."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from merge_assist.bot.runtime import Runtime
from tests.admin.conftest import auth, make_user

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELDS = ("username", "password", "priority", "role", "project_id", "user_id", "settings", "webhook_secret",
          "paused", "windows", "email", "active", "refresh_token", "gitlab_user_id")
BODY = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5))
PATH_VALUE = st.one_of(st.integers(min_value=-5, max_value=2**64).map(str), st.text(min_size=1, max_size=12))


def routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/api/v1/openapi.json").json()
    return [(path, method.upper()) for path, operations in spec["paths"].items() for method in operations
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE", "GET")
            and "text/event-stream" not in str(operations[method])]  # a live stream never ends


def test_random_bodies_on_every_route_never_get_5xx(client: TestClient, runtime: Runtime) -> None:
    make_user(runtime, "root", ("admin", None))
    admin = auth(client, "root")
    every = routes(client)
    assert len(every) >= 15

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(every), BODY, PATH_VALUE, st.booleans())
    def check(route: tuple[str, str], body: Any, value: str, signed_in: bool) -> None:
        path, method = route
        url = re.sub(r"\{[^}]+\}", lambda _: quote(value, safe=""), path)
        headers = admin if signed_in else {}
        response = client.request(method, url, json=body, headers=headers)
        assert response.status_code < 500, (method, url, body, response.text[:300])

    check()
