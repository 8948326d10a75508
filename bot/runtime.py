"""Wiring: builds the store, queue, GitLab adapter, rules engine and workers from Settings."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from merge_assist import plugins
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from merge_assist.adapters.git_workspace import GitWorkspace
from merge_assist.adapters.gitlab import PythonGitlabAdapter
from merge_assist.adapters.queues import InProcessQueue, RedisNoteLimiter, RedisStreamQueue
from merge_assist.adapters.read_cache import LocalEpochs, ReadInvalidation, RedisEpochs
from merge_assist.bot.config import ProjectConfig, load_server_config
from merge_assist.bot.dispatch import EventHandler, LaneWaker
from merge_assist.bot.observability import in_event_scope, install_process_metrics
from merge_assist.bot.settings import Settings
from merge_assist.bot.slack_wiring import SlackServices
from merge_assist.bot.webhook_auth import WebhookAuth
from merge_assist.bot.worker import LaneScheduler, Worker
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.errors import GitLabError
from merge_assist.rules.feedback import Feedback, NoteLimiter, NoteRateLimiter
from merge_assist.rules.flow import FlowDeps
from merge_assist.rules.plugins import build_plugin_manager
from merge_assist.rules.model import LaneKey
from merge_assist.rules.ports import Clock, GitLabPort, ReadEpochs
from merge_assist.rules.service import CommandDeps, CommandService
from merge_assist.rules.train_lane import TrainLane, is_train
from merge_assist.storage import Store, migrate

log = logging.getLogger("merge_assist.runtime")
DELIVERY_RETENTION_DAYS = 7


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class SchemaRefused(RuntimeError):
    pass


def open_store_checked(settings: Settings) -> Store:
    """Open the database; SQLite upgrades itself, PostgreSQL must already be migrated."""
    store = Store.open(settings.database_url)
    try:
        if store.db.is_sqlite:
            migrate.upgrade(store.db)
        else:
            migrate.ensure_current(store.db)
    except migrate.SchemaOutdated as exc:
        raise SchemaRefused(str(exc)) from None
    except OperationalError as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise SchemaRefused(f"MERGE_ASSIST_DATABASE_URL: cannot reach the database at {where} "
                            f"({type(exc.orig).__name__})") from None
    return store


@dataclass
class Runtime:
    settings: Settings
    store: Store
    queue: Any
    engine: RuleEngine
    webhook_auth: WebhookAuth
    gitlab: GitLabPort | None = None
    worker: Worker | None = None
    handler: EventHandler | None = None
    config: ProjectConfig | None = None
    feedback: Feedback | None = None
    slack: SlackServices | None = None
    commands: CommandService | None = None  # the admin API's priority and cancel go through it
    _started: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, settings: Settings, *, run_workers: bool, gitlab: GitLabPort | None = None,
              clock: Clock | None = None, extra_plugins: tuple[object, ...] = ()) -> "Runtime":
        install_process_metrics()
        store = open_store_checked(settings)
        queue: Any = (InProcessQueue() if settings.is_embedded
                      else RedisStreamQueue(settings.redis_url or "", settings.redis_prefix,
                                            reclaim_idle_ms=int(settings.queue_reclaim_seconds * 1000)))
        epochs: ReadEpochs = (LocalEpochs() if settings.is_embedded
                              else RedisEpochs(settings.redis_url or "", settings.redis_prefix))
        slack = SlackServices.build(settings, store)
        engine = RuleEngine(build_plugin_manager(plugins.BUILTIN_PLUGINS, extra=(*slack.plugins, *extra_plugins)))
        auth = WebhookAuth(settings.webhook_secret, store.projects)
        if gitlab is None and settings.gitlab_url and settings.gitlab_token:
            gitlab = PythonGitlabAdapter(settings.gitlab_url, settings.gitlab_token.reveal(), epochs=epochs)
        runtime = cls(settings, store, queue, engine, auth, gitlab, slack=slack)
        if gitlab is not None:
            runtime._wire(gitlab, clock or SystemClock(), run_workers, epochs)
        elif run_workers:
            log.warning("MERGE_ASSIST_GITLAB_URL is not set: events are accepted but no merge work is done")
        return runtime

    def _wire(self, gitlab: GitLabPort, clock: Clock, run_workers: bool, epochs: ReadEpochs) -> None:
        store, settings = self.store, self.settings
        limiter: NoteLimiter = (NoteRateLimiter() if settings.is_embedded
                                else RedisNoteLimiter(settings.redis_url or "", settings.redis_prefix))
        feedback = Feedback(gitlab, limiter)
        self.feedback = feedback
        self.config = ProjectConfig(gitlab, self.engine, store.projects, feedback,
                                    load_server_config(settings.server_config_file), epochs=epochs)
        queue_store: Any = store.queue
        flow = FlowDeps(gitlab=gitlab, store=queue_store, engine=self.engine, config=self.config,
                        clock=clock, feedback=feedback)
        train = self._train_lane(flow)
        scheduler = LaneScheduler(flow, settings.lease_seconds, settings.recheck_seconds, train)
        waker = LaneWaker(self.queue)
        commands = CommandService(CommandDeps(
            flow=flow, roles=store.users, audit=store.audit, history=queue_store,
            wake=lambda entry: waker.drive(entry.lane)))
        self.commands = commands
        self.handler = EventHandler(store, commands, scheduler, waker, bot_user_id=self._bot_user_id,
                                    caches=ReadInvalidation(epochs),
                                    runs_train=self._runs_train if train is not None else lambda lane: False,
                                    claim_seconds=settings.queue_reclaim_seconds / 2)
        assert self.slack is not None
        self.slack.wire(gitlab, commands, self.config, self.queue, run_workers)
        if run_workers:
            self.worker = Worker(self.queue, in_event_scope(self.slack.route(self.handler.handle)), scheduler,
                                 store.queue.waiting_lanes,
                                 consumers=settings.workers, recheck_seconds=settings.recheck_seconds,
                                 housekeeping=self._forget_old_deliveries)

    def _train_lane(self, flow: FlowDeps) -> TrainLane | None:
        """Trains need real git against the GitLab server (a test may hand in another GitLab port)."""
        settings = self.settings
        if not (settings.gitlab_url and settings.gitlab_token):
            return None
        builder = GitWorkspace(settings.git_cache_dir, settings.gitlab_url, settings.gitlab_token.reveal())
        return TrainLane(flow, self.store.cars, builder)

    def _forget_old_deliveries(self) -> None:
        """GitLab redelivers for a few days at most; older dedupe keys only take space."""
        removed = self.store.deliveries.forget_older_than(days=DELIVERY_RETENTION_DAYS)
        if removed:
            log.info("forgot %d delivery keys older than %d days", removed, DELIVERY_RETENTION_DAYS)

    def _runs_train(self, lane: LaneKey) -> bool:
        """Whether the lane runs a merge train (cached reads; on doubt, no)."""
        assert self.gitlab is not None and self.config is not None
        try:
            return is_train(self.config.options_for(self.gitlab.get_project(lane.project_id)))
        except GitLabError as exc:
            log.warning("cannot tell whether lane %s runs a train: %s", lane, exc)
            return False

    def _bot_user_id(self) -> int | None:
        if self.gitlab is None:
            return None
        try:
            return self.gitlab.current_user()[0]
        except GitLabError as exc:
            log.warning("cannot read the bot's own user: %s", exc)
            return None

    def start(self) -> None:
        if self._started:
            return
        self.webhook_auth.start()
        if self.slack is not None:
            self.slack.start()
        if self.worker is not None:
            self.worker.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self.webhook_auth.stop()
            if self.worker is not None:
                self.worker.stop()
            if self.feedback is not None:
                self.feedback.outbox.stop()  # held-back notes die with the process, as documented
            if self.slack is not None:
                self.slack.stop()
            self._started = False
        self.store.db.dispose()

    def readiness_problems(self) -> list[str]:
        problems = []
        if not self.store.db.ping():
            problems.append("database does not answer")
        if not self.queue.ping():
            problems.append("queue backend does not answer")
        return problems

    def run_forever(self) -> None:
        """The `worker` command: consume until SIGTERM or SIGINT."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        log.info("worker running; waiting for events")
        stop.wait()
        self.stop()
