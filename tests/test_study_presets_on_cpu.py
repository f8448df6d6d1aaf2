"""The study's matrix: which cells a preset holds, and that cells differ only in what they compare.

No training here: these check the command lines the sweep would run (``cell_argv``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asympo_plugin.study.cli import _parser, _preset
from asympo_plugin.study.matrix import FULL, HARD_EXTRA, METHODS, QUICK, Cell, cell_overrides, cells, harder
from asympo_plugin.study.runner import cell_argv
from asympo_plugin.task import prepare


@pytest.fixture(scope="module")
def task():
    return prepare()


def _argv(cell, preset, task):
    # One directory for every cell, so that only what the cell itself sets can differ.
    return cell_argv(cell, preset, task, Path("/runs/cell"))


def test_full_preset_is_every_method_at_every_level_with_three_seeds():
    matrix = cells(FULL)
    keys = [c.key for c in matrix]
    assert len(keys) == len(set(keys))
    async_methods = [m for m in METHODS.values() if not m.sync_only]
    for seed in (1, 2, 3):
        for level in (1, 2, 4):
            assert {c.method.name for c in matrix if (c.seed, c.staleness) == (seed, level)} == {
                m.name for m in async_methods
            }
        at_zero = {c.method.name for c in matrix if (c.seed, c.staleness) == (seed, 0)}
        # ppo_recompute on-policy *is* grpo_sync: run once, under the reference's name.
        assert at_zero == set(METHODS) - {"ppo_recompute"}
    assert len(matrix) == 3 * (3 * len(async_methods) + len(METHODS) - 1)
    # Seed-major: a sweep stopped half-way has covered every level for the first seeds.
    assert [c.seed for c in matrix] == sorted(c.seed for c in matrix)


def test_quick_preset_holds_the_runs_the_ratios_need():
    keys = {c.key for c in cells(QUICK)}
    at_four = {f"staleness4/{m.name}/seed1" for m in METHODS.values() if not m.sync_only}
    assert at_four <= keys  # every method where the current-policy losses should break
    assert {"staleness0/asympo/seed1", "staleness1/asympo/seed1", "staleness0/grpo_sync/seed1"} <= keys
    assert len(keys) == 9  # each run costs about 70 s of start-up on 2 cores: the preset must stay under 20 min


@pytest.mark.parametrize("preset", [FULL, harder(FULL)], ids=["demo", "hard"])
def test_cells_differ_only_in_method_pipeline_and_seed(preset, task):
    """'Every other setting identical': two methods at one level and seed differ only in their own keys."""
    base = _argv(Cell(METHODS["asympo"], 4, 1), preset, task)
    for name in ("spo", "naive", "gpg", "ppo_bypass", "ppo_recompute"):
        other = _argv(Cell(METHODS[name], 4, 1), preset, task)
        assert set(other) ^ set(base) <= set(METHODS[name].overrides) | set(METHODS["asympo"].overrides)
    seed2 = _argv(Cell(METHODS["asympo"], 4, 2), preset, task)
    assert set(seed2) ^ set(base) <= set(cell_overrides(Cell(METHODS["asympo"], 4, 1))) | set(
        cell_overrides(Cell(METHODS["asympo"], 4, 2))
    )


def test_demo_and_hard_settings_differ_only_in_lr_and_warmup(task):
    cell = Cell(METHODS["naive"], 4, 1)
    demo, hard = _argv(cell, FULL, task), _argv(cell, harder(FULL), task)
    assert "actor_rollout_ref.actor.optim.lr=0.0005" in demo  # the demo's lr
    assert "actor_rollout_ref.actor.optim.lr=0.002" in hard
    assert set(demo) ^ set(hard) == {
        "actor_rollout_ref.actor.optim.lr=0.0005",
        "actor_rollout_ref.actor.optim.lr=0.002",
        *HARD_EXTRA,
    }


def test_cli_keeps_the_hard_setting_under_user_overrides():
    args = _parser().parse_args(["run", "--hard", "--quick", "--override", "trainer.test_freq=5", "--steps", "7"])
    preset = _preset(args)
    assert preset.lr == 2e-3 and preset.steps == 7 and preset.seeds == QUICK.seeds
    assert preset.extra == (*HARD_EXTRA, "trainer.test_freq=5")  # appended, never replacing the setting


def test_a_custom_preset_says_which_defaults_the_command_line_replaced():
    """The report's preamble quotes ``why``: the base preset's defaults must read as replaced, not as what ran."""
    args = _parser().parse_args(["run", "--methods", "asympo,spo", "--staleness", "1,8", "--steps", "150"])
    preset = _preset(args)
    assert preset.name == "full+custom" and preset.steps == 150 and preset.staleness == (1, 8)
    assert preset.why.startswith(f"the `full` preset ({FULL.why}), with these replaced from the command line: ")
    assert preset.why.endswith("steps=150, staleness=[1, 8], methods=['asympo', 'spo']")
    assert _preset(_parser().parse_args(["run"])).why == FULL.why  # nothing replaced: the preset as it is
