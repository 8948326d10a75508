"""The real marge-bot 1.4 merges an MR on the simulator (opt-in: MERGE_ASSIST_MARGE=1)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.marge, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("MERGE_ASSIST_MARGE") != "1",
                                 reason="set MERGE_ASSIST_MARGE=1 to pip-install and run marge-bot")]


def test_marge_bot_merges_an_assigned_mr(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "bench" / "marge_compat.py"
    spec = importlib.util.spec_from_file_location("marge_compat", script)
    assert spec and spec.loader
    compat = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = compat  # dataclasses look their module up there
    spec.loader.exec_module(compat)
    venv_dir = Path(os.environ.get("MERGE_ASSIST_MARGE_VENV", tmp_path / "venv"))
    result = compat.run(compat.install_marge(venv_dir), tmp_path, ci_seconds=3, timeout=120)
    print(f"marge-bot: merged={result.merged} api={result.api_requests} git={result.git_requests}")
    assert result.merged, result.marge_log_tail
    assert result.failed_requests == []
    assert result.endpoints.get("PUT /api/v4/projects/N/merge_requests/N/rebase") == 1
    assert result.git_requests > 0
