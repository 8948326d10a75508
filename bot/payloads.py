"""Typed models of the GitLab webhook payloads the bot reads, and their validation.

A delivery is checked here before it is queued, so the worker only ever sees well-typed events:
`validate_hook` keeps the fields the bot uses (dropping the rest) and raises PayloadError, naming
the field, for a missing required field, a wrong type or an id outside GitLab's range
(1 .. 2^63-1, a PostgreSQL bigint). The result keeps GitLab's shape, so the handlers read it
like the original payload.
"""

from __future__ import annotations

from typing import Any, Callable, NotRequired, TypedDict

MAX_ID = 2**63 - 1
MAX_TEXT_CHARS = 1_000_000
"""GitLab's note limit; also caps every other string field."""


class PayloadError(ValueError):
    """The payload lacks a field the bot needs or has one of the wrong type; names the field."""


class ProjectRef(TypedDict):
    id: int
    path_with_namespace: NotRequired[str]
    default_branch: NotRequired[str]


class UserRef(TypedDict):
    id: int | None
    username: NotRequired[str]


class MergeRequestRef(TypedDict):
    iid: int


class NoteAttributes(TypedDict):
    id: int
    note: NotRequired[str]
    noteable_type: NotRequired[str]
    system: NotRequired[bool]
    updated_at: NotRequired[str]
    action: NotRequired[str]


class MergeRequestAttributes(TypedDict):
    id: NotRequired[int]
    iid: int
    target_branch: str
    updated_at: NotRequired[str]
    action: NotRequired[str]
    state: NotRequired[str]


class PipelineAttributes(TypedDict):
    id: int
    status: NotRequired[str]
    sha: NotRequired[str]
    updated_at: NotRequired[str]


class Commit(TypedDict, total=False):
    added: list[str]
    modified: list[str]
    removed: list[str]


class HookBody(TypedDict):
    """Every hook: its kind and the project (top-level `project_id` and/or `project.id`)."""

    object_kind: str
    project_id: int
    project: ProjectRef


class NoteHook(HookBody):
    user: UserRef
    object_attributes: NoteAttributes
    merge_request: NotRequired[MergeRequestRef]


class MergeRequestHook(HookBody):
    object_attributes: MergeRequestAttributes


class PipelineHook(HookBody):
    object_attributes: PipelineAttributes
    merge_request: NotRequired[MergeRequestRef]


class JobHook(HookBody):
    build_id: NotRequired[int]
    build_status: NotRequired[str]
    build_allow_failure: NotRequired[bool]
    build_name: NotRequired[str]
    sha: NotRequired[str]


class PushHook(HookBody):
    ref: NotRequired[str]
    after: NotRequired[str]
    commits: NotRequired[list[Commit]]
    total_commits_count: NotRequired[int]


# -- field readers -------------------------------------------------------------------------------

def _field(container: dict[str, Any], key: str, path: str, required: bool) -> Any:
    value = container.get(key)
    if value is None and required:
        raise PayloadError(f"missing field {path}{key}")
    return value


def _id(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise PayloadError(f"{name} must be an id between 0 and 2^63-1")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise PayloadError(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise PayloadError(f"{name} must be true or false")
    return value


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{name} must be an object")
    return value


def _texts(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise PayloadError(f"{name} must be a list")
    return [_text(item, f"{name}[]") for item in value]


Reader = Callable[[Any, str], Any]


def _copy(source: dict[str, Any], path: str, required: dict[str, Reader],
          optional: dict[str, Reader]) -> dict[str, Any]:
    """The listed fields of `source`, each checked by its reader; optional ones only when set."""
    result: dict[str, Any] = {}
    for fields, needed in ((required, True), (optional, False)):
        for key, read in fields.items():
            value = _field(source, key, path, needed)
            if value is not None:
                result[key] = read(value, path + key)
    return result


def _nested(value: Any, name: str, required: dict[str, Reader], optional: dict[str, Reader]) -> dict[str, Any]:
    return _copy(_object(value, name), name + ".", required, optional)


def _reader(required: dict[str, Reader], optional: dict[str, Reader] | None = None) -> Reader:
    return lambda value, name: _nested(value, name, required, optional or {})


# -- the hooks -----------------------------------------------------------------------------------

_PROJECT = _reader({}, {"id": _id, "path_with_namespace": _text, "default_branch": _text})
_USER = _reader({}, {"id": _id, "username": _text})
_MERGE_REQUEST_REF = _reader({"iid": _id})
_COMMIT = _reader({}, {"added": _texts, "modified": _texts, "removed": _texts})

_HOOK_FIELDS: dict[str, tuple[dict[str, Reader], dict[str, Reader]]] = {
    "Note Hook": (
        {"object_attributes": _reader({"id": _id}, {"note": _text, "noteable_type": _text, "system": _flag,
                                                    "updated_at": _text, "action": _text})},
        {"user": _USER, "merge_request": _MERGE_REQUEST_REF}),
    "Merge Request Hook": (
        {"object_attributes": _reader({"iid": _id, "target_branch": _text},
                                      {"id": _id, "updated_at": _text, "action": _text, "state": _text})},
        {"user": _USER}),
    "Pipeline Hook": (
        {"object_attributes": _reader({"id": _id}, {"status": _text, "sha": _text, "updated_at": _text,
                                                     "ref": _text, "url": _text})},
        {"merge_request": _MERGE_REQUEST_REF}),
    "Job Hook": (
        {},
        {"build_status": _text, "build_id": _id, "build_allow_failure": _flag, "build_name": _text, "sha": _text,
         "pipeline_id": _id}),
    "Push Hook": (
        {},
        {"ref": _text, "after": _text,
         "commits": lambda value, name: [_COMMIT(c, f"{name}[]") for c in _list(value, name)],
         "total_commits_count": _id, "user_id": _id}),
}


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{name} must be a list")
    return value


def handled_hooks() -> frozenset[str]:
    return frozenset(_HOOK_FIELDS)


def validate_hook(event: str, body: Any) -> HookBody:
    """The fields of an `event` delivery the bot uses, checked; PayloadError names a bad one."""
    required, optional = _HOOK_FIELDS[event]
    payload = _object(body, "the body")
    result = _copy(payload, "", {"object_kind": _text, **required}, optional)
    project = _PROJECT(payload.get("project") or {}, "project")
    top_level = payload.get("project_id")
    project_id = _id(top_level, "project_id") if top_level is not None else project.get("id")
    if not project_id:
        raise PayloadError("missing field project_id (or project.id)")
    result["project_id"] = project_id
    result["project"] = {**project, "id": project_id}
    return result  # type: ignore[return-value]


def project_id_hint(body: Any) -> int | None:
    """The project id a delivery names, if any, for choosing which secret to check it against."""
    if not isinstance(body, dict):
        return None
    project = body.get("project")
    for value in (body.get("project_id"), project.get("id") if isinstance(project, dict) else None):
        try:
            return _id(value, "project_id")
        except PayloadError:
            continue
    return None
