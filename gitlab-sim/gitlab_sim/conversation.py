"""Comments, threads, emoji reactions and approvals on merge requests."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from . import mergeability
from .errors import ApiError, unauthorized
from .hook_payloads import note_payload
from .mr_ops import emit_mr
from .state import AwardEmoji, MergeRequest, Note, User

if TYPE_CHECKING:
    from .backend import Backend

EMOJI_ALIASES = {"+1": "thumbsup", "-1": "thumbsdown"}


def post_note(backend: Backend, mr: MergeRequest, author: User, body: str, *,
              resolvable: bool = False, system: bool = False, discussion_id: str | None = None) -> Note:
    """Add a comment (a new thread unless ``discussion_id``); fires a Note Hook."""
    if not body.strip():
        raise ApiError(400, "400 Bad request - body is empty")
    state = backend.state
    with state.lock:
        now = backend.clock.now()
        note = Note(id=state.next_id("note"), mr_id=mr.id, body=body, author_id=author.id,
                    created_at=now, updated_at=now, discussion_id=discussion_id or uuid.uuid4().hex,
                    system=system, resolvable=resolvable)
        state.notes[note.id] = note
        mr.note_ids.append(note.id)
        mr.updated_at = now
        if not system:
            backend.emit(state.projects[mr.project_id], "note", note_payload(backend, mr, note.id, "create"))
        return note


def edit_note(backend: Backend, mr: MergeRequest, note: Note, editor: User, body: str) -> Note:
    """Change a comment's text; like GitLab, a hook fires only when the text changed."""
    state = backend.state
    with state.lock:
        if note.author_id != editor.id and not editor.is_admin:
            raise ApiError(403, "403 Forbidden")
        if note.body == body:
            return note
        note.body, note.updated_at = body, backend.clock.now()
        backend.emit(state.projects[mr.project_id], "note", note_payload(backend, mr, note.id, "update"))
        return note


def award(backend: Backend, reactions: list[AwardEmoji], user: User, name: str) -> AwardEmoji:
    """React with ``name``; reacting twice with the same emoji is GitLab's 404."""
    name = EMOJI_ALIASES.get(name, name)
    with backend.state.lock:
        if any(r.name == name and r.user_id == user.id for r in reactions):
            raise ApiError(404, "404 Award Emoji Name has already been taken")
        emoji = AwardEmoji(backend.state.next_id("award_emoji"), name, user.id, backend.clock.now())
        reactions.append(emoji)
        return emoji


def discussion_notes(backend: Backend, mr: MergeRequest) -> dict[str, list[Note]]:
    grouped: dict[str, list[Note]] = {}
    for note in backend.state.mr_notes(mr):
        grouped.setdefault(note.discussion_id, []).append(note)
    return grouped


def resolve_discussion(backend: Backend, mr: MergeRequest, discussion_id: str, user: User,
                       resolved: bool = True) -> list[Note]:
    with backend.state.lock:
        notes = discussion_notes(backend, mr).get(discussion_id)
        if not notes:
            raise ApiError(404, "404 Discussion Not Found")
        for note in notes:
            if note.resolvable:
                note.resolved = resolved
                note.resolved_by_id = user.id if resolved else None
        mr.updated_at = backend.clock.now()
        return notes


def approve(backend: Backend, mr: MergeRequest, user: User, sha: str | None = None) -> None:
    state = backend.state
    with state.lock:
        if sha and sha != mr.sha:
            raise ApiError(409, "SHA does not match HEAD of source branch")
        if user.id in mr.approved_by:
            raise unauthorized()
        was_missing = mergeability.approvals_left(state, mr) > 0
        mr.approved_by[user.id] = backend.clock.now()
        emit_mr(backend, mr, user, "approval")
        if was_missing and mergeability.approvals_left(state, mr) == 0:
            emit_mr(backend, mr, user, "approved")


def unapprove(backend: Backend, mr: MergeRequest, user: User) -> None:
    with backend.state.lock:
        if mr.approved_by.pop(user.id, None) is None:
            raise ApiError(404, "404 Not Found")
        emit_mr(backend, mr, user, "unapproval")
