"""Run mypy (configured in pyproject.toml, [tool.mypy]) over the product code: `-p merge_assist`.

The top-level folders (bot/, rules/, ...) install as `merge_assist.<folder>` through
setuptools' package-dir mapping, which mypy cannot follow (nor the editable install's import
hook). So this lays the package out as it is installed, as links under build/typecheck/, runs
mypy on it and prints the paths as they are in the repository. Exits with mypy's status.

    python .ci/typecheck.py            # with the project's venv python: it needs mypy and the stubs
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "build" / "typecheck"
SIMULATOR = REPO / "gitlab-sim"  # the demo imports the simulator; type-checked silently


def package_dirs() -> dict[str, str]:
    """`merge_assist` and its subpackages → their folders in the repository."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return dict(pyproject["tool"]["setuptools"]["package-dir"])


def lay_out_package(folders: dict[str, str]) -> None:
    shutil.rmtree(TREE, ignore_errors=True)
    (TREE / "merge_assist").mkdir(parents=True)
    for entry in (REPO / folders["merge_assist"]).iterdir():
        if entry.name != "__pycache__":
            (TREE / "merge_assist" / entry.name).symlink_to(entry)
    for package, folder in folders.items():
        if package != "merge_assist":
            (TREE / package.replace(".", "/")).symlink_to(REPO / folder, target_is_directory=True)


def main() -> int:
    folders = package_dirs()
    lay_out_package(folders)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "merge_assist"], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "MYPYPATH": f"{TREE}{os.pathsep}{SIMULATOR}"},
    )
    output = result.stdout + result.stderr
    # Longest package names first, so `merge_assist.bot` is mapped before `merge_assist`.
    for package in sorted(folders, key=len, reverse=True):
        inside_tree = f"{TREE.relative_to(REPO)}/{package.replace('.', '/')}/"
        output = output.replace(inside_tree, f"{folders[package]}/")
    print(output, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
