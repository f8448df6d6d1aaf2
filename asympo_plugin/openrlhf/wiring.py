"""How the plugin's loss gets into OpenRLHF's trainer: two guarded patches of ``ActorPPOTrainer``, and the list
of every OpenRLHF patch the adapter installs.

OpenRLHF 0.11.2 has no policy-loss registry: ``ActorPPOTrainer.__init__`` (``trainer/ray/ppo_actor.py:76-86``)
hard-wires ``PolicyLoss`` and ``training_step`` (``:259-407``) logs only the 5-tuple it returns.

* ``openrlhf_policy_loss`` (``patches/openrlhf_policy_loss.diff``): after ``__init__``, for
  ``--actor.policy_loss_type asympo|spo`` the stock loss object is replaced by ``loss.AsympoPolicyLoss`` built
  from the same ``args``; ``ppo`` and ``gspo`` keep OpenRLHF's object.
* ``openrlhf_loss_metrics`` (``patches/openrlhf_loss_metrics.diff``): the step's status gets the loss's
  diagnostics (``actor/scale/...``, ``actor/asympo/...``, the verl adapter's names) with per-sample weights,
  so OpenRLHF's own ``ppo_train`` reduction averages them over micro-batches and DP ranks and its loggers
  (console, wandb, tensorboard) show them (as ``train/actor/scale/...`` in wandb/tensorboard);
  ``ppo_clip_ratio``/``ppo_kl`` are dropped for a plugin loss (they compare with old log-probs a
  behavior-free run never computes). ``ppo``/``gspo``: the status is untouched.

This module imports no OpenRLHF; the replacements import ``loss.py`` when ``ppo_actor`` is first imported.
"""

from __future__ import annotations

import torch

from ..core.policy_loss import is_behavior_free
from ..patching import Patch
from . import behavior_free
from .compat import DISTRIBUTION, INSTALL_HINT, VERSIONS

# The stock metrics of training_step that compare against the old log-probs (meaningless without them).
OLD_LOG_PROB_METRICS = ("ppo_clip_ratio", "ppo_kl")


def _init_with_plugin_loss(original):
    from .loss import AsympoPolicyLoss  # ppo_actor (hence openrlhf.models) is imported by now

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if is_behavior_free(self.args.actor.policy_loss_type):
            self.actor_loss_fn = AsympoPolicyLoss.from_args(self.args)

    return __init__


def _training_step_with_loss_metrics(original):
    from .loss import AsympoPolicyLoss

    def training_step(self, *args, **kwargs):
        status = original(self, *args, **kwargs)
        loss_fn = self.actor_loss_fn
        if isinstance(loss_fn, AsympoPolicyLoss):
            metrics, weights = status["metrics"], status["weights"]
            for key in OLD_LOG_PROB_METRICS:
                metrics.pop(key, None)
                weights.pop(key, None)
            for key, value in loss_fn.last_metrics.items():
                metrics[key] = torch.tensor(float(value))
                weights[key] = "sample"  # ppo_train: sample-weighted mean over micro-batches and DP ranks
        return status

    return training_step


_GUARD = dict(distribution=DISTRIBUTION, versions=VERSIONS, install_hint=INSTALL_HINT)

POLICY_LOSS_PATCH = Patch(
    name="openrlhf_policy_loss",
    why=(
        "OpenRLHF has no policy-loss registry: ActorPPOTrainer.__init__ hard-wires PolicyLoss (ppo/gspo, else "
        "ValueError at the first step). For --actor.policy_loss_type asympo|spo the stock loss object is replaced "
        "by AsympoPolicyLoss built from the same args; ppo and gspo keep the stock object."
    ),
    module="openrlhf.trainer.ray.ppo_actor",
    attr="ActorPPOTrainer.__init__",
    source_sha256="96d26c53afc8267c8bc5bd3f96af545cd7fd421e3190075c9ea223b4ceadcaed",
    make_replacement=_init_with_plugin_loss,
    **_GUARD,
)

LOSS_METRICS_PATCH = Patch(
    name="openrlhf_loss_metrics",
    why=(
        "training_step logs only the 5-tuple the loss returns. For a plugin loss its diagnostics (actor/scale/*, "
        "actor/asympo/*) are added to the step's status with per-sample weights, and ppo_clip_ratio / ppo_kl (which "
        "compare with old log-probs a behavior-free run never computes) are dropped. ppo/gspo: unchanged."
    ),
    module="openrlhf.trainer.ray.ppo_actor",
    attr="ActorPPOTrainer.training_step",
    source_sha256="ffa1acd4a5a21e377be2bab4abd30c3f069fe7a620daa3b446625de3cc630a6a",
    make_replacement=_training_step_with_loss_metrics,
    **_GUARD,
)


# Every OpenRLHF patch of the adapter, in install order (the CPU backend adds its own, cpu/shims.py).
PATCHES = (POLICY_LOSS_PATCH, LOSS_METRICS_PATCH, *behavior_free.PATCHES)
