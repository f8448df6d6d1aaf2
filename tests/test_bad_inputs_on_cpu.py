"""Every row of docs/BAD_INPUTS.md: the command exits 2 with the fix named, and Ray never starts.

The table is the test's data: a row added to the doc is tested, a row whose message changed fails.
``...`` in a command stands for a valid command line (see :func:`_expand`).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import VALID_OVERRIDES

DOC = Path(__file__).resolve().parents[1] / "docs" / "BAD_INPUTS.md"
PROGRAMS = ("asympo-train", "asympo-compare", "python -m asympo_plugin.demo")


def rows() -> list[tuple[str, str, str]]:
    """``(number, command, expected text)`` of every numbered row."""
    found = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| (\d+) \| `(.+?)` \| .+? \| `(.+)` \|$", line)
        if m:
            found.append(m.groups())
    return found


ROWS = rows()


def test_the_table_has_at_least_30_rows_all_numbered_once():
    numbers = [int(n) for n, _, _ in ROWS]
    assert len(numbers) >= 30 and numbers == list(range(1, len(numbers) + 1))


def _valid_run_files(tmp_path: Path) -> list[str]:
    """Existing model folder and data files, so that only the row's own bad path is missing."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).write_bytes(b"")
    return [
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={tmp_path / 'train.parquet'}",
        f"data.val_files={tmp_path / 'val.parquet'}",
    ]


def _expand(program: str, args: list[str], tmp_path: Path) -> list[str]:
    if program == "asympo-train" and "..." in args:
        i = args.index("...")
        valid = [o for o in VALID_OVERRIDES if not o.startswith("actor_rollout_ref.model.path")]
        args = [*args[:i], *valid, *_valid_run_files(tmp_path), *args[i + 1 :]]
    return args


def _main(program: str):
    if program == "asympo-train":
        from asympo_plugin.verl.launcher import main
    elif program == "asympo-compare":
        from asympo_plugin.study.cli import main
    else:
        from asympo_plugin.demo import main
    return main


@pytest.mark.parametrize("number, command, expected", ROWS, ids=[f"row{n}" for n, _, _ in ROWS])
def test_bad_input_is_refused_before_ray_with_the_fix_named(number, command, expected, tmp_path, capsys):
    import ray

    program = next(p for p in PROGRAMS if command.startswith(p))
    command = command.replace("{file}", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("")
    args = _expand(program, shlex.split(command[len(program) :]), tmp_path)
    try:
        rc = _main(program)(args)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert expected in err, err
    assert not ray.is_initialized()
