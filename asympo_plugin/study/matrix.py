"""The head-to-head matrix: methods x staleness levels x seeds, every other setting identical.

A *cell* is one (method, staleness, seed) run. What differs between cells is only

* the method's loss keys (:data:`METHODS`; the same variants as ``recipes/run_head_to_head.sh``),
* the pipeline that produces the staleness (:func:`pipeline_for`): 0 = verl's synchronous trainer
  (on-policy), 1 = verl's one-step-off trainer, ``k >= 2`` = one-step-off with the weight sync
  delivered ``k - 1`` versions late (``delayed_sync.py``); or, with ``Preset.stale_pipeline =
  FULLY_ASYNC`` (``asympo-compare run --fully-async``), verl's fully-async trainer bounded at ``k``
  (:func:`fully_async_overrides`),
* the seed (data order, actor data loader, rollout sampling).

Everything else (task, model, batch, group size, lr, steps, validation) comes from one
:class:`Preset` and ``asympo_plugin.demo.train_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Method:
    name: str  # directory and table key
    label: str  # table and legend text
    overrides: tuple[str, ...]  # asympo-train overrides that define the method
    sync_only: bool = False  # a staleness-0 reference only (shown in every table)


PPO_RECOMPUTE = (
    "algorithm.loss=vanilla",
    "algorithm.rollout_correction.bypass_mode=False",
    "actor_rollout_ref.rollout.calculate_log_probs=False",
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("asympo", "ASymPO", ("algorithm.loss=asympo",)),
        Method("spo", "SPO", ("algorithm.loss=spo",)),
        Method("naive", "naive (gpg loss, GRPO adv.)", ("algorithm.loss=gpg", "algorithm.adv_estimator=grpo")),
        Method("gpg", "GPG (gpg loss, GPG adv.)", ("algorithm.loss=gpg", "algorithm.adv_estimator=gpg")),
        Method(
            "ppo_bypass",
            "PPO-clip, rollout log-probs (bypass)",
            (
                "algorithm.loss=vanilla",
                "algorithm.rollout_correction.bypass_mode=True",
                "actor_rollout_ref.rollout.calculate_log_probs=True",
            ),
        ),
        Method("ppo_recompute", "PPO-clip, recomputed old log-probs", PPO_RECOMPUTE),
        # Synchronous on-policy GRPO (PPO-clip): identical to ppo_recompute at staleness 0.
        Method("grpo_sync", "GRPO, sync (on-policy reference)", PPO_RECOMPUTE, sync_only=True),
    )
}


DELAYED_SYNC = "delayed-sync"  # staleness >= 1: one-step-off, weights delivered staleness - 1 syncs late
FULLY_ASYNC = "fully-async"  # staleness >= 1: verl's fully-async trainer with that staleness bound
STALE_PIPELINES = (DELAYED_SYNC, FULLY_ASYNC)


def pipeline_for(staleness: int) -> tuple[str, int]:
    """``(asympo-train --pipeline, weight-sync delay)`` that produces ``staleness`` by construction."""
    if staleness < 0:
        raise ValueError(f"staleness must be >= 0, got {staleness}")
    if staleness == 0:
        return "sync", 0
    return "one-step-off", staleness - 1


def fully_async_overrides(staleness: int, steps: int, batch_size: int) -> tuple[str, ...]:
    """verl's fully-async trainer with staleness bound ``staleness``, ``batch_size`` prompts per trainer step.

    ``staleness_threshold = staleness - 1``: a sample is at most ``staleness`` policy versions old (verl's
    own bound; how stale each one is depends on timing, so it is a bound, not the fixed level of the
    delayed sync). One prompt per generation request and one weight sync per trainer step, ``steps``
    trainer steps in all (``rollout.total_rollout_steps`` counts prompts). The command line of
    ``docs/study/fully_async`` (``tests/test_study_matrix_on_cpu.py`` keeps them equal).
    """
    if staleness < 1:
        raise ValueError(
            f"the fully-async trainer has no staleness-{staleness} setting: its bound is >= 1 "
            "(staleness 0 is verl's synchronous trainer; use the default pipeline for it)"
        )
    return (
        "data.train_batch_size=0",
        "data.gen_batch_size=1",
        "actor_rollout_ref.hybrid_engine=False",
        f"async_training.staleness_threshold={staleness - 1}",
        "async_training.trigger_parameter_sync_step=1",
        "async_training.require_batches=1",
        f"rollout.total_rollout_steps={steps * batch_size}",
    )


@dataclass(frozen=True)
class Preset:
    name: str
    steps: int
    seeds: tuple[int, ...]
    staleness: tuple[int, ...]
    methods: tuple[str, ...]
    # Restrict some staleness levels to a subset of methods (the quick preset); absent = all methods.
    methods_at: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # The demo's settings (asympo_plugin.demo.train_overrides defaults), written out so that a change
    # there does not silently change the study.
    batch_size: int = 16
    n: int = 8
    lr: float = 5e-4
    test_freq: int = 10
    extra: tuple[str, ...] = ()  # asympo-train overrides applied to every cell (e.g. a harder setting)
    stale_pipeline: str = DELAYED_SYNC  # what runs staleness >= 1 (STALE_PIPELINES); staleness 0 is always sync
    why: str = ""


FULL = Preset(
    name="full",
    steps=30,
    seeds=(1, 2, 3),
    staleness=(0, 1, 2, 4),
    methods=tuple(METHODS),
    why="every method at staleness 0, 1, 2, 4 with 3 seeds, 30 steps each (about 2 hours on 2 cores)",
)

QUICK = Preset(
    name="quick",
    steps=16,
    seeds=(1,),
    staleness=(0, 1, 4),
    methods=tuple(METHODS),
    methods_at={0: ("asympo", "grpo_sync"), 1: ("asympo",)},
    why=(
        "1 seed, 16 steps, 16 prompts x 8 responses; every method at staleness 4 (where the current-policy losses "
        "should break; the learner ratio compares asympo and ppo_recompute there), sync GRPO as the on-policy "
        "reference, and asympo at staleness 0 and 1 for the pipeline ratio: 9 runs, 914 s measured on 2 idle cores "
        "(each run spends about 70 s starting and stopping Ray and verl)"
    ),
)

PRESETS = {p.name: p for p in (FULL, QUICK)}

# The harder setting (docs/RESULTS_previous_task.md): at the demo's lr the losses barely separate in 30 steps on this
# task. Four times the lr, reached by a linear warm-up over 10 steps so that the first, sign-like Adam
# step does not wreck every method at once (run A of docs/RESULTS_previous_task.md, without warm-up, shows that).
HARD_LR = 2e-3
HARD_EXTRA = ("actor_rollout_ref.actor.optim.lr_warmup_steps=10",)


def harder(preset: Preset) -> Preset:
    """``preset`` in the harder setting (``asympo-compare run --hard``): lr 2e-3 with a 10-step warm-up."""
    return replace(
        preset,
        name=f"{preset.name}-hard",
        lr=HARD_LR,
        extra=(*HARD_EXTRA, *preset.extra),
        why=f"{preset.why}; harder setting: lr {HARD_LR:g} with a 10-step linear warm-up",
    )


@dataclass(frozen=True)
class Cell:
    method: Method
    staleness: int
    seed: int

    @property
    def key(self) -> str:
        return f"staleness{self.staleness}/{self.method.name}/seed{self.seed}"

    def run_dir(self, root: Path) -> Path:
        return root / f"staleness{self.staleness}" / self.method.name / f"seed{self.seed}"


def cells(preset: Preset) -> list[Cell]:
    """The preset's runs, seed-major (a partial sweep still covers every level) and deduplicated.

    At staleness 0, ``ppo_recompute`` is the same run as ``grpo_sync`` and is not run twice;
    ``grpo_sync`` runs at staleness 0 only (it is the reference row of every table).
    """
    out = []
    for seed in preset.seeds:
        for staleness in preset.staleness:
            allowed = preset.methods_at.get(staleness, preset.methods)
            for name in preset.methods:
                method = METHODS[name]
                if name not in allowed:
                    continue
                if method.sync_only and staleness != 0:
                    continue
                if name == "ppo_recompute" and staleness == 0 and "grpo_sync" in allowed:
                    continue
                out.append(Cell(method, staleness, seed))
    return out


def cell_overrides(cell: Cell) -> tuple[str, ...]:
    """Everything that varies by cell, as asympo-train overrides (the method's and the seed's)."""
    return (
        *cell.method.overrides,
        f"data.seed={cell.seed}",
        f"actor_rollout_ref.actor.data_loader_seed={cell.seed}",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.ASYMPO_ROLLOUT_SEED='{cell.seed}'",
    )
