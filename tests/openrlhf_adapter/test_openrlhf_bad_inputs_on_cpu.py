"""Every ``O`` row of docs/BAD_INPUTS.md (asympo-openrlhf): exit status 2, the fix named, Ray not started.

The table is the test's data: a row added to the doc is tested, a row whose message changed fails.
``...`` in a command stands for a valid command line (:data:`VALID`).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from asympo_plugin.openrlhf import compat, launcher

DOC = Path(__file__).resolve().parents[2] / "docs" / "BAD_INPUTS.md"
PROGRAM = "asympo-openrlhf"
VALID = ["--actor.model_name_or_path", "x", "--algo.kl.init_coef", "0"]


def rows() -> list[tuple[str, str, str, str]]:
    """``(number, command, what is wrong, expected text)`` of every ``O`` row."""
    found = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| (O\d+) \| `(.+?)` \| (.+?) \| `(.+)` \|$", line)
        if m:
            found.append(m.groups())
    return found


ROWS = rows()


def test_the_table_covers_every_kind_of_bad_input():
    numbers = [n for n, *_ in ROWS]
    assert numbers == [f"O{i}" for i in range(1, len(numbers) + 1)]
    commands = " ".join(c for _, c, _, _ in ROWS)
    wrong = " ".join(w for _, _, w, _ in ROWS)
    for needed in ("asympoo", "asympo_eps 0", "asympo_eps nan", "asympo_eps inf", "spo_neg_scale 1.5"):
        assert needed in commands, needed
    for needed in ("token-mean", "kl.init_coef 0.01", "unbiased_gradient", "is_correction_level"):
        assert needed in commands, needed
    assert "installed" in wrong  # a wrong OpenRLHF version


@pytest.mark.parametrize("number, command, wrong, expected", ROWS, ids=[n for n, *_ in ROWS])
def test_bad_input_is_refused_before_ray_with_the_fix_named(number, command, wrong, expected, capsys, monkeypatch):
    import ray

    assert command.startswith(PROGRAM)
    args = shlex.split(command[len(PROGRAM) :])
    if "..." in args:
        i = args.index("...")
        args = [*args[:i], *VALID, *args[i + 1 :]]
    version = re.search(r"OpenRLHF (\S+) installed", wrong)
    if version:
        monkeypatch.setattr(compat, "installed_version", lambda dist: version.group(1))
    try:
        rc = launcher.main(args)
    except SystemExit as e:  # argparse's own errors (OpenRLHF's parser)
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert expected in err, err
    assert not ray.is_initialized()
