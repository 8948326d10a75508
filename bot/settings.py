"""Settings, read once from the environment (prefix MERGE_ASSIST_).

Every secret may instead be given as MERGE_ASSIST_<NAME>_FILE, a path to a file holding it.
A missing or bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar

PREFIX = "MERGE_ASSIST_"
MIN_JWT_SECRET_BYTES = 32
T = TypeVar("T")


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]{0,30}://[^:@/\s]{0,256}:)[^@\s]{1,1024}@")
URL_PASSWORD_MASK = "***"


def redact_url(text: str) -> str:
    """`text` with the password of every `scheme://user:password@host` in it masked."""
    return _URL_PASSWORD.sub(lambda match: f"{match.group('head')}{URL_PASSWORD_MASK}@", text)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Secret:
    """A secret string whose repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)


LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///merge-assist.db"
    redis_url: str | None = None
    redis_prefix: str = "merge-assist"
    gitlab_url: str | None = None
    gitlab_token: Secret | None = None
    webhook_secret: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_bot_token: Secret | None = None
    jwt_secret: Secret | None = None  # required by `serve` unless it is the only process (see cli)
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    workers: int = 2
    recheck_seconds: float = 300.0
    git_cache_dir: Path = Path(tempfile.gettempdir()) / "merge-assist-git"
    lease_seconds: float = 60.0
    server_config_file: Path | None = None
    queue_reclaim_seconds: float = 30.0
    metrics_port: int = 0  # `worker` only: 0 = no metrics/health port
    log_format: str = "text"
    slack_api_url: str = "https://slack.com/api/"
    slack_response_origins: tuple[str, ...] = ("https://hooks.slack.com",)
    slack_channel: str | None = None
    slack_stuck_minutes: float = 60.0

    @property
    def is_embedded(self) -> bool:
        """No Redis: the queue and the workers run inside `serve`."""
        return self.redis_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def may_have_replicas(self) -> bool:
        """Redis or PostgreSQL means other processes may serve too: they must share the JWT key."""
        return not (self.is_embedded and self.is_sqlite)


def _read(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(PREFIX + name)
    return value if value not in (None, "") else None


def _read_secret(env: Mapping[str, str], name: str) -> Secret | None:
    value = _read_direct_or_file(env, name)
    return Secret(value) if value is not None else None


def _read_direct_or_file(env: Mapping[str, str], name: str) -> str | None:
    direct = _read(env, name)
    path = _read(env, name + "_FILE")
    if direct is not None and path is not None:
        raise SettingsError(f"{PREFIX}{name} and {PREFIX}{name}_FILE are both set; set only one")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{PREFIX}{name}_FILE: cannot read {path!r} ({exc.strerror})") from None
        if not text:
            raise SettingsError(f"{PREFIX}{name}_FILE: {path!r} is empty")
        return text
    return direct


def _parse(env: Mapping[str, str], name: str, convert: Callable[[str], T], kind: str,
           read: Callable[[Mapping[str, str], str], str | None] = _read) -> T | None:
    raw = read(env, name)
    if raw is None:
        return None
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}: expected {kind}, got {redact_url(repr(raw))}") from None


def _positive(convert: Callable[[str], T]) -> Callable[[str], T]:
    def check(raw: str) -> T:
        value = convert(raw)
        if value <= 0:  # type: ignore[operator]
            raise ValueError(raw)
        return value

    return check


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(raw)
    return value


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if not raw.startswith(schemes):
            raise ValueError(raw)
        return raw.rstrip("/") if raw.startswith("http") else raw

    return check


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(raw)
    return level


def _log_format(raw: str) -> str:
    if raw.lower() not in LOG_FORMATS:
        raise ValueError(raw)
    return raw.lower()


def _origins(raw: str) -> tuple[str, ...]:
    """`https://hooks.slack.com,http://127.0.0.1:9000` → origins (scheme://host[:port])."""
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError(raw)
    if not origins:
        raise ValueError(raw)
    return origins


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting once; raise SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    values: dict[str, object] = {
        # URLs may hold passwords: like secrets, they may come from a file (`..._URL_FILE`).
        "database_url": _parse(env, "DATABASE_URL", _url(("sqlite:", "postgresql")), "a sqlite:// or postgresql:// URL",
                               _read_direct_or_file),
        "redis_url": _parse(env, "REDIS_URL", _url(("redis://", "rediss://", "unix://")), "a redis:// URL",
                            _read_direct_or_file),
        "redis_prefix": _read(env, "REDIS_PREFIX"),
        "gitlab_url": _parse(env, "GITLAB_URL", _url(("http://", "https://")), "an http(s):// URL"),
        "host": _read(env, "HOST"),
        "port": _parse(env, "PORT", _port, "a port number 0-65535"),
        "log_level": _parse(env, "LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR"),
        "workers": _parse(env, "WORKERS", _positive(int), "a positive integer"),
        "recheck_seconds": _parse(env, "RECHECK_SECONDS", _positive(float), "a positive number of seconds"),
        "git_cache_dir": _parse(env, "GIT_CACHE_DIR", Path, "a directory"),
        "lease_seconds": _parse(env, "LEASE_SECONDS", _positive(float), "a positive number of seconds"),
        "server_config_file": _parse(env, "SERVER_CONFIG_FILE", Path, "a file path"),
        "queue_reclaim_seconds": _parse(env, "QUEUE_RECLAIM_SECONDS", _positive(float), "a positive number of seconds"),
        "metrics_port": _parse(env, "METRICS_PORT", _port, "a port number 0-65535"),
        "log_format": _parse(env, "LOG_FORMAT", _log_format, "text or json"),
        "slack_api_url": _parse(env, "SLACK_API_URL", _url(("http://", "https://")), "an http(s):// URL"),
        "slack_response_origins": _parse(env, "SLACK_RESPONSE_ORIGINS", _origins,
                                         "comma-separated origins such as https://hooks.slack.com"),
        "slack_channel": _read(env, "SLACK_CHANNEL"),
        "slack_stuck_minutes": _parse(env, "SLACK_STUCK_MINUTES", _positive(float), "a positive number of minutes"),
    }
    for secret_name in ("GITLAB_TOKEN", "WEBHOOK_SECRET", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "JWT_SECRET"):
        values[secret_name.lower()] = _read_secret(env, secret_name)
    jwt_secret = values["jwt_secret"]
    if isinstance(jwt_secret, Secret) and len(jwt_secret.reveal().encode()) < MIN_JWT_SECRET_BYTES:
        raise SettingsError(f"{PREFIX}JWT_SECRET: needs at least {MIN_JWT_SECRET_BYTES} bytes for HS256 "
                            "(e.g. `openssl rand -base64 48`)")
    if values["gitlab_url"] and not values["gitlab_token"]:
        raise SettingsError(f"{PREFIX}GITLAB_TOKEN: required when {PREFIX}GITLAB_URL is set")
    return Settings(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
