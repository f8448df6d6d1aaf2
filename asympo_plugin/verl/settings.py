"""The one place that turns ``algorithm.loss`` and the loss fields into verl's config, and sets defaults.

``asympo-train`` composes the user's config with Hydra, then calls :func:`apply` once:

1. ``algorithm.loss=<name>`` (command line or recipe YAML; verl has no such key, so it is removed)
   becomes ``actor_rollout_ref.actor.policy_loss.loss_mode`` and the plugin's config class
   (``_target_``, which carries the fields ``asympo_eps``, ``spo_neg_scale``,
   ``asympo_allow_unbalanced_agg``); each field is checked once (``asympo_plugin.core.fields``);
2. for a behavior-free loss (the registry flag), settings that read behavior log-probs are refused with
   the fix named, and what would produce them is turned off;
3. with ``trainer.device=cpu``, the CPU backend's defaults (``cpu.cpu_defaults``).

A default never overwrites what the user set explicitly: a key given on the command line or written in
the user's own config file is the user's. Every default that changed a value is printed on stderr.
The same setting behaves the same from the command line and from a recipe YAML.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from ..core import fields as core_fields
from . import config as verl_config
from .losses import needs_behavior_log_probs, registered_losses

ACTOR = "actor_rollout_ref.actor"
POLICY_LOSS = f"{ACTOR}.policy_loss"
# verl advantage estimators that read old_log_probs (verl/trainer/ppo/ray_trainer.py::compute_advantage).
ADV_ESTIMATORS_READING_OLD_LOG_PROBS = ("optimal_token_baseline", "tir_optimal_token_baseline")
# Estimators whose advantage is relative to the other responses of the prompt's group.
GROUP_RELATIVE_ESTIMATORS = (
    "grpo",
    "rloo",
    "grpo_passk",
    "gpg",
    "opo",
    "rloo_vectorized",
    "grpo_vectorized",
    "reinforce_plus_plus_baseline",
    "gdpo",
)


class SettingsError(core_fields.LossConfigError):
    """A setting that cannot work with the selected loss or pipeline; the message says what to do."""


def flatten_keys(node, prefix: str = "") -> set[str]:
    """Dotted keys of every leaf of a YAML mapping (an empty mapping is a leaf); ``defaults``/``hydra`` skipped."""
    keys: set[str] = set()
    for k, v in node.items():
        if k in ("defaults", "hydra") and not prefix:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, DictConfig | dict) and len(v):
            keys |= flatten_keys(v, f"{key}.")
        else:
            keys.add(key)
    return keys


class Editor:
    """Edits a composed config: defaults that respect the user's explicit keys, printed when they change a value."""

    def __init__(self, cfg: DictConfig, explicit: Iterable[str], prog: str = "asympo-train"):
        self.cfg, self.explicit, self.prog = cfg, set(explicit), prog
        self.chosen: dict[str, object] = {}

    def is_explicit(self, key: str) -> bool:
        """The user set ``key``, a mapping above it, or a key inside it (then the default would overwrite it)."""
        return any(key == e or key.startswith(e + ".") or e.startswith(key + ".") for e in self.explicit)

    def get(self, key: str, default=None):
        return OmegaConf.select(self.cfg, key, default=default)

    def default(self, key: str, value, reason: str, *, only_if_present: bool = False) -> None:
        """Set ``key`` to ``value`` unless the user set it; with ``only_if_present``, only if verl's config has it."""
        if self.is_explicit(key):
            return
        node, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(self.cfg, node) if node else self.cfg
        present = parent is not None and leaf in parent
        if only_if_present and not present:
            return
        old = parent[leaf] if present else None
        if isinstance(old, DictConfig | ListConfig):
            old = OmegaConf.to_container(old)
        if present and old == value:
            return
        with open_dict(self.cfg):
            OmegaConf.update(self.cfg, key, value, merge=False, force_add=True)
        self.chosen[key] = value
        print(f"{self.prog}: {key}: {old} -> {value} ({reason})", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# 1. algorithm.loss and the fields
# --------------------------------------------------------------------------------------------------


def apply_loss(ed: Editor, loss: str | None) -> str:
    """Turn ``algorithm.loss`` into the actor's loss settings (in place); return the loss name."""
    cfg = ed.cfg
    yaml_loss = cfg.algorithm.get("loss") if "algorithm" in cfg else None
    loss = loss or yaml_loss
    with open_dict(cfg):
        cfg.algorithm.pop("loss", None)  # verl's AlgoConfig has no such field
    actor = OmegaConf.select(cfg, ACTOR)
    if loss is None:
        loss = actor.policy_loss.loss_mode
        print(f"{ed.prog}: no algorithm.loss given; using {POLICY_LOSS}.loss_mode={loss}", file=sys.stderr)
    available = registered_losses()
    if loss not in available:
        raise SettingsError(
            f"unknown algorithm.loss={loss!r}. Registered losses: {', '.join(available)}. Use one of them "
            "(asympo and spo are the plugin's)."
        )
    with open_dict(cfg):
        policy_loss = actor.policy_loss
        policy_loss.loss_mode = loss
        policy_loss._target_ = verl_config.CONFIG_TARGET
        for name, default in core_fields.LOSS_FIELDS.items():
            policy_loss.setdefault(name, default)
    if loss == "asympo":
        ed.default(f"{ACTOR}.loss_agg_mode", core_fields.ASYMPO_AGG_MODE, "ASymPO's zero-sum balance needs it")
    core_fields.check_asympo_eps(policy_loss.asympo_eps, verl_config.where("asympo_eps"))
    core_fields.check_spo_neg_scale(policy_loss.spo_neg_scale, verl_config.where("spo_neg_scale"))
    core_fields.check_agg_mode(
        loss,
        actor.loss_agg_mode,
        bool(policy_loss.asympo_allow_unbalanced_agg),
        verl_config.AGG_MODE_PATH,
        verl_config.where("asympo_allow_unbalanced_agg"),
    )
    return loss


# --------------------------------------------------------------------------------------------------
# 2. behavior-free
# --------------------------------------------------------------------------------------------------


def refuse_behavior_settings(ed: Editor, loss: str) -> None:
    """Settings that read behavior log-probs somewhere else in verl; they cannot work without them."""
    why = (
        f"algorithm.loss={loss} is behavior-free: the pipeline computes no old_log_probs and ships no rollout log-probs"
    )
    if ed.get("algorithm.use_kl_in_reward", False):
        raise SettingsError(
            f"algorithm.use_kl_in_reward=true reads old_log_probs (verl's apply_kl_penalty), but {why}. Use a KL "
            "loss instead (actor_rollout_ref.actor.use_kl_loss=true) or set algorithm.use_kl_in_reward=false."
        )
    for key in ("rollout_is", "rollout_rs"):
        if ed.get(f"algorithm.rollout_correction.{key}") is not None:
            raise SettingsError(
                f"algorithm.rollout_correction.{key} needs behavior (rollout) log-probs, but {why}. Set "
                f"algorithm.rollout_correction.{key}=null, or use a loss that reads behavior log-probs (e.g. vanilla)."
            )
    for key in ("algorithm.rollout_correction.bypass_mode", f"{ACTOR}.use_rollout_log_probs"):
        if ed.is_explicit(key) and ed.get(key):
            raise SettingsError(
                f"{key}=true makes the rollout's log-probs the old log-probs, but {why}. Remove the setting (the "
                f"plugin turns it off for {loss}) or use a loss that reads behavior log-probs (e.g. vanilla)."
            )
    key = "actor_rollout_ref.rollout.calculate_log_probs"
    if ed.is_explicit(key) and ed.get(key) and ed.get("algorithm.rollout_correction") is not None:
        # verl 0.9.1 (ray_trainer.py:1650, separation/ray_trainer.py:604): a batch with rollout log-probs goes
        # through compute_rollout_correction_and_add_to_batch, which reads old_log_probs: KeyError at step 1.
        raise SettingsError(
            f"{key}=true ships the rollout's log-probs, and verl's rollout-correction stage then reads old_log_probs "
            f"from every batch that has them (a KeyError at the first step), but {why}. Remove the setting (the "
            f"plugin turns it off for {loss}) or use a loss that reads behavior log-probs (e.g. vanilla with "
            "algorithm.rollout_correction.bypass_mode=true)."
        )
    adv = ed.get("algorithm.adv_estimator")
    if adv in ADV_ESTIMATORS_READING_OLD_LOG_PROBS:
        raise SettingsError(f"algorithm.adv_estimator={adv} reads old_log_probs, but {why}. Use grpo, rloo, gpg, ...")
    for engine in ("megatron", "veomni"):
        if ed.get(f"{ACTOR}.{engine}.router_replay.mode") == "R2":
            raise SettingsError(
                f"{ACTOR}.{engine}.router_replay.mode=R2 records MoE routes in the old-log-prob pass, which a "
                f"behavior-free loss skips ({why}). Use router_replay.mode=R3 or disabled."
            )


def refuse_legacy_trainer(ed: Editor, loss: str, pipeline: str) -> None:
    """verl's deprecated legacy trainer computes old log-probs inline in its ``fit()``: refuse, no silent waste."""
    if pipeline == "sync" and not ed.get("trainer.use_v1", True):
        raise SettingsError(
            f"trainer.use_v1=False selects verl's deprecated legacy trainer, which always runs the old-log-prob "
            f"forward pass; {loss} never reads it, so every step would pay for nothing. Use trainer.use_v1=True "
            "(verl's default), where the pass is skipped, or a loss that reads behavior log-probs."
        )


def apply_behavior_free(ed: Editor, loss: str, pipeline: str) -> None:
    """For a behavior-free loss: refuse what needs behavior log-probs, turn off what would produce them."""
    if needs_behavior_log_probs(loss):
        return
    refuse_behavior_settings(ed, loss)
    refuse_legacy_trainer(ed, loss, pipeline)
    reason = f"{loss} reads no behavior log-probs"
    ed.default(
        "actor_rollout_ref.rollout.calculate_log_probs",
        False,
        f"{reason}; the rollout neither computes nor ships them",
        only_if_present=True,
    )
    ed.default(
        "algorithm.rollout_correction.bypass_mode",
        False,
        f"{reason}; the old-log-prob stage is skipped",
        only_if_present=True,
    )
    ed.default(f"{ACTOR}.use_rollout_log_probs", False, reason, only_if_present=True)
    ed.default(f"{ACTOR}.calculate_entropy", True, "logs actor/entropy_update_forward", only_if_present=True)


def refuse_degenerate_groups(ed: Editor) -> None:
    """``rollout.n=1`` with a group-relative estimator gives every response advantage 0: nothing trains."""
    adv = ed.get("algorithm.adv_estimator")
    n = ed.get("actor_rollout_ref.rollout.n", 1)
    if adv in GROUP_RELATIVE_ESTIMATORS and n is not None and int(n) < 2:
        raise SettingsError(
            f"algorithm.adv_estimator={adv} compares each response with the other responses of its prompt, but "
            f"actor_rollout_ref.rollout.n={n}: every advantage would be 0 and nothing would train. Set "
            "actor_rollout_ref.rollout.n=2 or more (8 is common)."
        )


# --------------------------------------------------------------------------------------------------


def apply(cfg: DictConfig, loss: str | None, explicit: Iterable[str], pipeline: str, prog: str = "asympo-train") -> str:
    """Everything ``asympo-train`` changes in a composed config, in order; returns the loss name."""
    ed = Editor(cfg, explicit, prog)
    loss = apply_loss(ed, loss)
    refuse_degenerate_groups(ed)
    apply_behavior_free(ed, loss, pipeline)
    forward_switches(ed)
    if ed.get("trainer.device") == "cpu":
        from . import cpu

        cpu.cpu_defaults(ed)
    return loss


def forward_switches(ed: Editor) -> None:
    """The plugin's environment switches, set on the driver, reach every Ray worker (where losses register)."""
    import os

    from .cpu.recorder import ENV as RECORD_ENV
    from .losses import BUILTIN_DIAGNOSTICS_ENV

    switches = [n for n in (BUILTIN_DIAGNOSTICS_ENV, RECORD_ENV) if n in os.environ]
    if not switches or ed.get("ray_kwargs.ray_init") is None:
        return
    key = "ray_kwargs.ray_init.runtime_env.env_vars"
    env_vars = dict(ed.get(key) or {})
    for name in switches:
        env_vars.setdefault(name, os.environ[name])
    with open_dict(ed.cfg):
        OmegaConf.update(ed.cfg, key, env_vars, merge=False, force_add=True)
