"""Carrying out commands: authorization, the enqueue checks, queue changes and the reply."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Concatenate, ParamSpec, Protocol, TypeVar

from merge_assist.rules.commands import CommandInvocation, CommandRefused, CommandReply, CommandSpec
from merge_assist.rules.errors import AlreadyQueuedError, GitLabError, NotFound, ServiceFailure
from merge_assist.rules.feedback import Feedback
from merge_assist.rules.events import log_event
from merge_assist.rules.flow import FlowDeps, rule_context
from merge_assist.rules.help import render_help, render_status
from merge_assist.rules.hookspecs import ACCESS_DEVELOPER, AuthDecision, AuthRequest
from merge_assist.rules.model import PRIORITY_ROLES, Actor, EntryState, MergeRequest, Outcome, Priority, Project, QueueEntry
from merge_assist.rules.lane_machine import Mover, command_may_cancel
from merge_assist.rules.ports import AuditLog, Refused

log = logging.getLogger("merge_assist.commands")
CANCEL_ATTEMPTS = 5


class RoleLookup(Protocol):
    def roles_for(self, *, project_id: int, gitlab_user_id: int | None = None,
                  gitlab_username: str | None = None) -> frozenset[str]: ...


class QueueHistory(Protocol):
    def latest_entry_for(self, project_id: int, iid: int) -> QueueEntry | None: ...


@dataclass
class CommandDeps:
    flow: FlowDeps
    roles: RoleLookup
    audit: AuditLog
    history: QueueHistory
    wake: Callable[[QueueEntry], None]

    @property
    def feedback(self) -> Feedback:
        return self.flow.feedback


def _target(project_id: int, iid: int) -> str:
    return f"{project_id}!{iid}"


class CommandService:
    """Runs one command for one actor on one merge request and answers on the MR."""

    def __init__(self, deps: CommandDeps) -> None:
        self.deps = deps

    def project_id_for(self, path: str) -> int | None:
        try:
            project = self.deps.flow.gitlab.get_project_by_path(path)
        except GitLabError as exc:
            log.warning("cannot look up project %s: %s", path, exc)
            return None
        return project.id if project else None

    def known_commands(self) -> list[str]:
        return list(self.deps.flow.engine.commands())

    def execute(self, name: str, args: tuple[str, ...], actor: Actor, project_id: int, iid: int,
                note_id: int | None = None, *, post_reply: bool = True) -> CommandReply:
        flow = self.deps.flow
        spec = flow.engine.commands().get(name)
        if spec is None:
            return self._answer(actor, project_id, iid, CommandReply(f"Unknown command `{name}`.", ok=False),
                                name, post_reply)
        try:
            mr = flow.gitlab.get_merge_request(project_id, iid)
        except NotFound:
            return CommandReply(f"I cannot find merge request !{iid} in project {project_id}.", ok=False)
        roles = self.deps.roles.roles_for(project_id=project_id, gitlab_user_id=actor.gitlab_user_id,
                                          gitlab_username=actor.username)
        decision = self._authorize(spec, args, actor, mr, roles)
        if not decision.allowed:
            self.deps.audit.record(actor, f"command:{name}", _target(project_id, iid), "refused", decision.reason)
            reply = CommandReply(f"@{actor.username} you may not run `{name}` here: {decision.reason}", ok=False)
            return self._answer(actor, project_id, iid, reply, name, post_reply, audited=True)
        # Recorded before anything the command does, so the audit shows cause before effect.
        self.deps.audit.record(actor, f"command:{name}", _target(project_id, iid), "received", " ".join(args)[:500])
        services = MergeRequestServices(self, actor, mr, note_id, roles)
        reply = flow.engine.run_command(CommandInvocation(
            name=name, args=args, actor=actor, project_id=project_id, mr_iid=iid, note_id=note_id, services=services,
            merge_request=mr))
        if not reply.ok:
            reply = CommandReply(f"@{actor.username} {reply.text}", ok=False)
        answered = self._answer(actor, project_id, iid, reply, name, post_reply and not services.replied)
        # Lanes are woken only now, so the command's audit record precedes any work it causes.
        for entry in services.wakes:
            self.deps.wake(entry)
        return answered

    def _authorize(self, spec: CommandSpec, args: tuple[str, ...], actor: Actor, mr: MergeRequest,
                   roles: frozenset[str]) -> AuthDecision:
        """The actor's own GitLab rights decide, never the bot's: effective access level against
        the target branch's merge level, plus bot roles for priorities above normal."""
        gitlab = self.deps.flow.gitlab
        access = gitlab.get_access_level(mr.project_id, actor.gitlab_user_id) if actor.gitlab_user_id else 0
        required = ACCESS_DEVELOPER
        if spec.mutates:
            required = gitlab.get_merge_access_level(mr.project_id, mr.target_branch) or ACCESS_DEVELOPER
        return self.deps.flow.engine.authorize(AuthRequest(
            command=spec.name, actor=actor, project_id=mr.project_id, mr_iid=mr.iid, target_branch=mr.target_branch,
            access_level=access, required_merge_level=required, roles=roles,
            requested_priority=spec.requested_priority(args) if spec.requested_priority else None,
            mutates=spec.mutates,
        ))

    def _answer(self, actor: Actor, project_id: int, iid: int, reply: CommandReply, name: str,
                post_reply: bool, audited: bool = False) -> CommandReply:
        if not audited:
            self.deps.audit.record(actor, f"command:{name}", _target(project_id, iid),
                                   "ok" if reply.ok else "refused", reply.text[:500])
        log_event("command", command=name, outcome="ok" if reply.ok else "refused", project=project_id, mr=iid,
                  actor=actor.username, channel=actor.channel)
        if post_reply:
            self.deps.feedback.comment(project_id, iid, reply.text)
        return reply

    def reply_unknown(self, actor: Actor, project_id: int, iid: int, message: str) -> None:
        help_text = render_help(self.deps.flow.engine)
        self.deps.audit.record(actor, "command:unknown", _target(project_id, iid), "refused", message)
        self.deps.feedback.comment(project_id, iid, f"@{actor.username} {message}\n\n{help_text}")


P = ParamSpec("P")
R = TypeVar("R")


def _own_failures(method: Callable[Concatenate[MergeRequestServices, P], R]) -> Callable[Concatenate[MergeRequestServices, P], R]:
    """A failure of the bot's own parts (the database gone, say) while a command runs is not the
    command plugin's bug: it becomes ServiceFailure, which the engine lets through for a retry."""
    def run(self: MergeRequestServices, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (CommandRefused, GitLabError, ServiceFailure):
            raise
        except Exception as exc:
            raise ServiceFailure(f"{method.__name__} failed: {type(exc).__name__}") from exc

    run.__doc__ = method.__doc__
    return run


class MergeRequestServices:
    """`rules.commands.CommandServices` for one MR; each method returns the reply text."""

    def __init__(self, service: CommandService, actor: Actor, mr: MergeRequest, note_id: int | None,
                 roles: frozenset[str] = frozenset()) -> None:
        self._deps = service.deps
        self._flow = service.deps.flow
        self._actor = actor
        self._mr = mr
        self._note_id = note_id
        self._roles = roles
        self.replied = False
        self.wakes: list[QueueEntry] = []

    @property
    def _project(self) -> Project:
        return self._flow.gitlab.get_project(self._mr.project_id)

    def _active(self) -> QueueEntry | None:
        return self._flow.store.active_entry_for(self._mr.project_id, self._mr.iid)

    def _place(self, entry: QueueEntry) -> tuple[int, int]:
        """(1-based position, lane size) of an active entry, from one read of its lane."""
        lane = self._flow.store.lane_entries(entry.lane)
        position = next((index for index, other in enumerate(lane, start=1) if other.id == entry.id), len(lane))
        return position, len(lane)

    def _position_text(self, entry: QueueEntry) -> str:
        position, size = self._place(entry)
        return f"position {position} of {size} in `{entry.target_branch}`"

    @_own_failures
    def enqueue(self, priority: Priority) -> str:
        mr, project = self._mr, self._project
        existing = self._active()
        if existing is not None:
            return f"!{mr.iid} is already queued ({existing.state.value}), {self._position_text(existing)}."
        last = self._deps.history.latest_entry_for(mr.project_id, mr.iid)
        if self._note_id is not None and last is not None and last.note_id == self._note_id:
            # The same comment delivered again after a worker died before marking it done.
            return f"This command was already carried out: !{mr.iid} is {last.state.value}."
        options = self._flow.config.options_for(project, mr)
        context = rule_context(self._flow, project, mr, None)
        decision = self._flow.engine.check_enqueue(context, options)
        if decision.outcome is Outcome.REFUSE:
            self._deps.audit.record(self._actor, "enqueue", _target(mr.project_id, mr.iid), "refused",
                                    decision.explain())
            reasons = "; ".join(f"rule `{v.rule}`: {v.reason}" for v in decision.blocking)
            raise CommandRefused(f"I cannot queue this merge request. {reasons}")
        priority = self._capped(priority, self._flow.engine.adjust_priority(context, priority, options))
        try:
            entry = self._flow.store.add_entry(mr.project_id, mr.iid, mr.target_branch, priority,
                                               self._actor.username, note_id=self._note_id,
                                               channel=self._actor.channel, actor_gitlab_id=self._actor.gitlab_user_id)
        except AlreadyQueuedError as exc:
            return f"!{mr.iid} is already queued ({exc.entry.state.value})."
        self._flow.feedback.acknowledge(mr.project_id, mr.iid, self._note_id)
        position, size = self._place(entry)
        self._flow.feedback.queued(mr.project_id, mr.iid, position, size, mr.target_branch)
        self.replied = True
        self.wakes.append(entry)
        return f"Queued with priority {priority.label}: position {position} of {size} in `{mr.target_branch}`."

    def _capped(self, requested: Priority, adjusted: Priority) -> Priority:
        """Rules (e.g. priority labels) may raise a priority above normal only for role holders:
        anyone who can set a label must not be able to jump the queue that way."""
        if adjusted > max(requested, Priority.NORMAL) and not self._roles & PRIORITY_ROLES:
            return max(requested, Priority.NORMAL)
        return adjusted

    @_own_failures
    def cancel(self) -> str:
        """A compare-and-set on the state we read: it either lands before the lane's move to
        `merging` (and the lane's next compare-and-set fails, so nothing merges), or the lane got
        there first and the answer says so."""
        for _ in range(CANCEL_ATTEMPTS):
            entry = self._active()
            if entry is None:
                return self._not_queued_text()
            if not command_may_cancel(entry.state):
                raise CommandRefused(f"!{self._mr.iid} is already merging; it is too late to cancel.")
            moved = self._flow.store.transition(entry.id, entry.state, EntryState.CANCELLED,
                                                f"cancelled by @{self._actor.username}", mover=Mover.COMMAND,
                                                actor=self._actor)
            if not isinstance(moved, Refused):
                self.wakes.append(entry)
                return f"Removed !{self._mr.iid} from the `{entry.target_branch}` queue."
        raise CommandRefused(f"!{self._mr.iid} keeps changing state; try `cancel` again in a moment.")

    def _not_queued_text(self) -> str:
        last = self._deps.history.latest_entry_for(self._mr.project_id, self._mr.iid)
        if last is not None and last.state is EntryState.MERGED:
            return f"!{self._mr.iid} is already merged."
        return f"!{self._mr.iid} is not in the queue."

    @_own_failures
    def set_priority(self, priority: Priority) -> str:
        entry = self._active()
        if entry is None:
            return f"!{self._mr.iid} is not in the queue; use `/merge-assist merge --priority {priority.label}`."
        moved = self._flow.store.set_priority(entry.id, priority, actor=self._actor)
        if isinstance(moved, Refused):
            return f"!{self._mr.iid} has left the queue ({moved.reason}); its priority no longer matters."
        self.wakes.append(moved)
        return f"Priority set to {priority.label}: {self._position_text(moved)}."

    @_own_failures
    def retry(self) -> str:
        if self._active() is not None:
            return f"!{self._mr.iid} is already queued."
        last = self._deps.history.latest_entry_for(self._mr.project_id, self._mr.iid)
        priority = last.priority if last else Priority.NORMAL
        if priority > Priority.NORMAL and not self._roles & PRIORITY_ROLES:
            priority = Priority.NORMAL  # a raised priority is kept only for those who may raise it
        return self.enqueue(priority)

    @_own_failures
    def status(self) -> str:
        project, mr = self._project, self._mr
        entry = self._active()
        options = self._flow.config.options_for(project, mr)
        paused = self._flow.store.lane_paused(entry.lane) if entry else False
        decision = self._flow.engine.check_merge(rule_context(self._flow, project, mr, entry, paused), options)
        position, size = self._place(entry) if entry else (None, None)
        text = render_status(decision, position, size)
        if entry is not None:
            text += f"\n\nQueue state: `{entry.state.value}`" + (f" ({entry.reason})" if entry.reason else "")
        return text

    def help(self) -> str:
        return render_help(self._flow.engine)
