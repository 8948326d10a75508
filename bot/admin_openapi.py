"""The OpenAPI description of the admin API, generated from the same route table the app serves,
so the contract cannot drift from the routes (a test checks every route appears in it)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from merge_assist.bot.admin_http import ApiRoute

PATH_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
API_VERSION = "1.0.0"
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
EVENTS_PATH = "/api/v1/events"


def openapi_path(path: str) -> str:
    return PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


JSON_TYPES = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "array"}


def _schema(kind: type | tuple[type, ...]) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"anyOf": [_schema(k) for k in kind]}
    schema: dict[str, Any] = {"type": JSON_TYPES[kind]}
    if kind is int:
        schema.update(minimum=0, maximum=2**63 - 1)
    return schema


def _parameters(route: ApiRoute) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1} if kind == "int" else {"type": "string"}}
        for name, kind in PATH_PARAM.findall(route.path)]
    params += [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in route.query]
    return params


def _operation(route: ApiRoute) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{route.handler.__name__}_{route.method.lower()}",
        "summary": route.summary,
        "parameters": _parameters(route),
        "responses": {
            str(route.status): {"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "invalid input", "content": {"application/json": {"schema": ERROR_SCHEMA}}},
        },
    }
    if route.permission is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-permission"] = route.permission.value
        operation["responses"]["401"] = {"description": "no valid access token"}
        operation["responses"]["403"] = {"description": f"the caller's roles do not give {route.permission.value}"}
    else:
        operation["security"] = []
    if route.body.fields:
        operation["requestBody"] = {"required": bool(route.body.required), "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": list(route.body.required),
            "properties": {name: _schema(kind) for name, kind in route.body.fields.items()}}}}}
    return operation


def build_openapi(routes: Iterable[ApiRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    paths[EVENTS_PATH] = {"get": {
        "operationId": "events_get", "summary": "Server-sent events: `lanes` with the lanes snapshot on each change",
        "security": [{"bearer": []}], "x-permission": "read",
        "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                      "401": {"description": "no valid access token"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Merge Assist admin API", "version": API_VERSION,
                 "description": "Sign in at POST /api/v1/auth/token, then send `Authorization: Bearer <access_token>`."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "paths": paths,
    }
