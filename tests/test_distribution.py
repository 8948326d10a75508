"""The built wheel: one top-level package, `merge_assist`, that installs next to distributions
owning the names `rules` and `adapters` without either shadowing the other, and with which the
example plugin installs and loads through its entry point.

Offline and quick: wheels are built with `pip wheel --no-deps --no-build-isolation` from copies
of the sources, installed into a fresh venv without their dependencies, which the venv then
borrows from the test environment through a .pth file (added after the installs, so that pip
never sees the test environment's editable install).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".worktrees", "build", "dist", "*.egg-info", "__pycache__",
                                     ".demo", "*.db", ".pytest_cache")
EXAMPLE = REPO / "examples" / "merge_assist_example_plugin"


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def build_wheel(source: Path, wheels: Path) -> Path:
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", wheels, source, cwd=source.parent)
    name = source.name.replace("-", "_")
    (wheel,) = [path for path in wheels.glob("*.whl") if path.name.lower().startswith(name.lower() + "-")]
    return wheel


def stand_in(work: Path, name: str) -> Path:
    """A tiny distribution that owns the top-level package `name`."""
    source = work / f"standin-{name}"
    (source / name).mkdir(parents=True)
    (source / name / "__init__.py").write_text(f'OWNER = "standin-{name}"\n')
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "standin-{name}"
        version = "1.0"

        [tool.setuptools]
        packages = ["{name}"]
    """))
    return source


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheels")
    built = work / "wheels"
    merge_assist = shutil.copytree(REPO, work / "merge-assist", ignore=NOT_SOURCES)  # builds litter the source
    example = shutil.copytree(EXAMPLE, work / "merge_assist_ticket_rule", ignore=NOT_SOURCES)
    return {
        "merge_assist": build_wheel(merge_assist, built),
        "example": build_wheel(example, built),
        "rules": build_wheel(stand_in(work, "rules"), built),
        "adapters": build_wheel(stand_in(work, "adapters"), built),
    }


@pytest.fixture(scope="module")
def fresh_venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the four wheels installed; dependencies borrowed from the test environment."""
    home = tmp_path_factory.mktemp("venv") / "fresh"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", *wheels.values(),
        cwd=home)
    site_packages = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=home).strip())
    (site_packages / "zz_test_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def test_the_wheel_has_no_top_level_package_but_merge_assist(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["merge_assist"]) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"merge_assist"}
    for folder in ("bot", "rules", "plugins", "adapters", "storage"):
        assert f"merge_assist/{folder}/__init__.py" in names, folder
    assert "merge_assist/py.typed" in names
    assert "merge_assist/storage/migrations/env.py" in names


CHECK_IMPORTS = """
import adapters, rules
import merge_assist, merge_assist.adapters.gitlab, merge_assist.bot.cli, merge_assist.rules.engine
assert rules.OWNER == "standin-rules" and adapters.OWNER == "standin-adapters"
assert merge_assist.rules.engine.__file__.startswith(sys.prefix), merge_assist.rules.engine.__file__
print("imports ok")
"""


def test_the_wheel_installs_next_to_packages_named_rules_and_adapters(fresh_venv: Path, tmp_path: Path) -> None:
    assert run(fresh_venv, "-c", "import sys\n" + CHECK_IMPORTS, cwd=tmp_path).strip() == "imports ok"


CHECK_EXAMPLE = """
from datetime import datetime, timezone
from merge_assist import MergeRequest, Outcome, Project, RuleContext, Approvals
from merge_assist.plugins import BUILTIN_PLUGINS
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.plugins import build_plugin_manager

engine = RuleEngine(build_plugin_manager(BUILTIN_PLUGINS))
mr = MergeRequest(project_id=1, iid=2, title="Add login", author_id=3, author_username="alice",
                  source_branch="login", target_branch="main", state="opened", sha="a" * 40)
context = RuleContext(project=Project(id=1, path="team/app"), merge_request=mr, approvals=Approvals(),
                      options={}, now=datetime.now(timezone.utc))
decision = engine.check_enqueue(context)
assert decision.outcome is Outcome.REFUSE, decision
print(decision.explain())
"""


def test_the_example_plugin_installs_and_loads_from_its_entry_point(fresh_venv: Path, tmp_path: Path) -> None:
    assert "ticket_reference: the title references no ticket" in run(fresh_venv, "-c", CHECK_EXAMPLE, cwd=tmp_path)
