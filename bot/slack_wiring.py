"""Builds the Slack parts from Settings: notification and link plugins, the Web API sender, the
command runner for workers and the stuck check. Without Slack settings they stay inert."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from merge_assist.adapters.slack_notify import SlackSender, web_client
from merge_assist.bot.config import ProjectConfig
from merge_assist.bot.settings import Settings
from merge_assist.bot.slack_commands import EVENT_KIND, SlackCommandRunner
from merge_assist.bot.slack_link import LinkCodes, SlackLinkCommand
from merge_assist.bot.slack_notifications import SlackNotifications, StuckWatch
from merge_assist.bot.slack_respond import SlackResponder
from merge_assist.rules.ports import GitLabPort
from merge_assist.rules.service import CommandService
from merge_assist.storage import Store
from merge_assist.storage.slack_links import SlackLinks

EventHandlerFn = Callable[[dict[str, Any]], None]


@dataclass
class SlackServices:
    settings: Settings
    store: Store
    sender: SlackSender | None
    notifications: SlackNotifications
    link_command: SlackLinkCommand
    runner: SlackCommandRunner | None = None
    stuck: StuckWatch | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, store: Store) -> "SlackServices":
        sender = None
        if settings.slack_bot_token:
            sender = SlackSender(web_client(settings.slack_bot_token.reveal(), settings.slack_api_url))
        codes = LinkCodes(settings.slack_signing_secret.reveal()) if settings.slack_signing_secret else None

        def tell_linked(slack_user_id: str, gitlab_username: str) -> None:
            if sender is not None:
                sender.send(slack_user_id, f"Your Slack account is now linked to GitLab user `{gitlab_username}`.")

        links = SlackLinks(store.db)
        return cls(settings, store, sender,
                   SlackNotifications(sender, settings.slack_channel, links.direct_message_recipient),
                   SlackLinkCommand(codes, links, store.audit, tell_linked))

    @property
    def plugins(self) -> tuple[object, ...]:
        return (self.notifications, self.link_command)

    def wire(self, gitlab: GitLabPort, commands: CommandService, config: ProjectConfig, queue: Any,
             run_workers: bool) -> None:
        self.notifications.read_options_with(config.options_for)
        self.runner = SlackCommandRunner(commands, gitlab, self.store, queue,
                                         SlackResponder(self.settings.slack_response_origins,
                                                        direct_message=self.sender.send if self.sender else None))
        if run_workers and self.sender is not None:
            self.stuck = StuckWatch(self.notifications, self.sender, self.store.queue, gitlab, config.options_for,
                                    lambda key: self.store.deliveries.first_time(key, "slack"),
                                    self.settings.slack_stuck_minutes * 60)

    def route(self, handle: EventHandlerFn) -> EventHandlerFn:
        """The worker's handler: Slack commands here, everything else to `handle`."""
        def handle_event(event: dict[str, Any]) -> None:
            if event.get("kind") == EVENT_KIND and self.runner is not None:
                self.runner.handle(event)
            else:
                handle(event)

        return handle_event

    def start(self) -> None:
        if self.sender is not None:
            self.sender.start()
        if self.stuck is not None:
            self.stuck.start()

    def stop(self) -> None:
        if self.stuck is not None:
            self.stuck.stop()
        if self.sender is not None:
            self.sender.stop()
