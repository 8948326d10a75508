import logging
import sys

import pytest

from merge_assist.bot.logs import MASK, RedactingFormatter
from merge_assist.bot.settings import Secret, SettingsError, load_settings


def test_defaults_are_embedded_sqlite():
    settings = load_settings({})
    assert settings.database_url == "sqlite:///merge-assist.db"
    assert settings.is_embedded and settings.is_sqlite
    assert settings.port == 8080


@pytest.mark.parametrize("name, value", [
    ("MERGE_ASSIST_PORT", "eighty"),
    ("MERGE_ASSIST_PORT", "70000"),
    ("MERGE_ASSIST_DATABASE_URL", "mysql://x"),
    ("MERGE_ASSIST_REDIS_URL", "http://localhost"),
    ("MERGE_ASSIST_WORKERS", "0"),
    ("MERGE_ASSIST_LOG_LEVEL", "chatty"),
    ("MERGE_ASSIST_RECHECK_SECONDS", "-1"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert str(caught.value).startswith(name + ":")
    assert value in str(caught.value)


def test_short_jwt_secret_is_refused():
    with pytest.raises(SettingsError, match="MERGE_ASSIST_JWT_SECRET: needs at least 32 bytes"):
        load_settings({"MERGE_ASSIST_JWT_SECRET": "short"})
    assert load_settings({"MERGE_ASSIST_JWT_SECRET": "x" * 32}).jwt_secret.reveal() == "x" * 32


def test_gitlab_url_requires_token():
    with pytest.raises(SettingsError, match="MERGE_ASSIST_GITLAB_TOKEN"):
        load_settings({"MERGE_ASSIST_GITLAB_URL": "https://gitlab.example.com"})


def test_secret_from_file_is_read_and_masked(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text("glpat-very-secret-value\n")
    settings = load_settings({"MERGE_ASSIST_GITLAB_URL": "https://gitlab.example.com",
                              "MERGE_ASSIST_GITLAB_TOKEN_FILE": str(path)})
    assert settings.gitlab_token is not None
    assert settings.gitlab_token.reveal() == "glpat-very-secret-value"
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings.gitlab_token)
    formatter = RedactingFormatter(["glpat-very-secret-value"])
    try:
        raise RuntimeError(f"GitLab refused {settings.gitlab_token.reveal()}")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "calling GitLab with %s",
                                   (settings.gitlab_token.reveal(),), sys.exc_info())
    text = formatter.format(record)
    assert "very-secret" not in text
    assert text.count(MASK) == 2 and "RuntimeError" in text


def test_secret_file_errors_name_the_variable(tmp_path):
    with pytest.raises(SettingsError, match="MERGE_ASSIST_WEBHOOK_SECRET_FILE"):
        load_settings({"MERGE_ASSIST_WEBHOOK_SECRET_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="both set"):
        load_settings({"MERGE_ASSIST_WEBHOOK_SECRET": "a", "MERGE_ASSIST_WEBHOOK_SECRET_FILE": "b"})


def test_secret_equality_and_repr():
    assert Secret("abc") == Secret("abc")
    assert Secret("abc") != Secret("abd")
    assert repr(Secret("abc")) == "Secret('**********')"


def test_database_and_redis_urls_may_come_from_files(tmp_path):
    (tmp_path / "db").write_text("postgresql://merge_assist:pw@db:5432/merge_assist\n")
    (tmp_path / "redis").write_text("rediss://:pw@cache:6380/0\n")
    settings = load_settings({"MERGE_ASSIST_DATABASE_URL_FILE": str(tmp_path / "db"),
                              "MERGE_ASSIST_REDIS_URL_FILE": str(tmp_path / "redis")})
    assert settings.database_url == "postgresql://merge_assist:pw@db:5432/merge_assist"
    assert settings.redis_url == "rediss://:pw@cache:6380/0"
    (tmp_path / "bad").write_text("mysql://x\n")
    with pytest.raises(SettingsError, match="MERGE_ASSIST_DATABASE_URL: expected"):
        load_settings({"MERGE_ASSIST_DATABASE_URL_FILE": str(tmp_path / "bad")})


def test_operations_settings_default_off_and_are_checked():
    settings = load_settings({})
    assert (settings.metrics_port, settings.log_format) == (0, "text")
    assert load_settings({"MERGE_ASSIST_LOG_FORMAT": "JSON", "MERGE_ASSIST_METRICS_PORT": "9100"}).log_format == "json"
    with pytest.raises(SettingsError, match="MERGE_ASSIST_LOG_FORMAT: expected text or json"):
        load_settings({"MERGE_ASSIST_LOG_FORMAT": "xml"})
