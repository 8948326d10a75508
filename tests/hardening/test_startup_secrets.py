"""Finding 7: start-up errors never print the passwords in database, Redis or GitLab URLs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from merge_assist.bot.logs import RedactingFormatter
from merge_assist.bot.settings import redact_url
from tests.helpers import cli

PASSWORD = "Sup3rSecretPw"


@pytest.mark.parametrize("command, env", [
    (["migrate"], {"MERGE_ASSIST_DATABASE_URL": f"postgresql://merge:{PASSWORD}@127.0.0.1:1/db"}),
    (["serve", "--port", "1"], {"MERGE_ASSIST_DATABASE_URL": f"postgresql://merge:{PASSWORD}@127.0.0.1:1/db",
                                "MERGE_ASSIST_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0"}),
    (["migrate"], {"MERGE_ASSIST_DATABASE_URL": f"mysql://merge:{PASSWORD}@db.example/db"}),
    (["migrate"], {"MERGE_ASSIST_DATABASE_URL": f"postgresql+nodriver://merge:{PASSWORD}@db.example/db"}),
    (["migrate"], {"MERGE_ASSIST_DATABASE_URL": f"postgresql://merge:{PASSWORD}@[broken/db"}),
    (["migrate"], {"MERGE_ASSIST_REDIS_URL": f"http://:{PASSWORD}@redis.example/0"}),
    (["migrate"], {"MERGE_ASSIST_GITLAB_URL": f"ftp://bot:{PASSWORD}@gitlab.example",
                   "MERGE_ASSIST_GITLAB_TOKEN": "x"}),
    (["migrate"], {"MERGE_ASSIST_GITLAB_URL": f"https://bot:{PASSWORD}@gitlab.example"}),
])
def test_start_up_errors_name_the_problem_without_the_password(tmp_path: Path, command: list[str],
                                                                env: dict[str, str]) -> None:
    result = cli(command, tmp_path, env, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert PASSWORD not in output
    assert "Traceback" not in output
    assert output.strip().startswith("merge-assist:"), output


@pytest.mark.parametrize("text, expected", [
    ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("redis://:pw@h/0 and https://bot:p%40ss@gitlab", "redis://:***@h/0 and https://bot:***@gitlab"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("no url here", "no url here"),
])
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_log_lines_mask_url_passwords() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "cannot reach %s", (f"redis://:{PASSWORD}@h/0",), None)
    assert PASSWORD not in RedactingFormatter([]).format(record)
