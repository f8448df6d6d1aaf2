"""One check shared by the verl, CPU and vLLM patch tests: a ``patches/*.diff`` still applies to the installed source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def assert_diff_applies(diff: Path, site: Path, tmp_path: Path) -> None:
    """``git apply --check -p1 diff`` against copies of its target files from ``site`` (site-packages)."""
    targets = [line[6:].strip() for line in diff.read_text().splitlines() if line.startswith("+++ b/")]
    assert targets
    for target in targets:
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(site / target, tmp_path / target)
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    result = subprocess.run([git, "apply", "--check", "-p1", str(diff)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
