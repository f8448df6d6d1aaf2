"""Every metric name the plugin logs, in one place (verl's ``actor/...`` convention; OpenRLHF uses the same).

The scale diagnostics are ``{prefix}/scale/<name>`` with ``prefix`` the framework's actor prefix
(``actor`` in verl and in the plugin's OpenRLHF adapter).
"""

from __future__ import annotations

ACTOR = "actor"
SCALE = "scale"

POS_NLL = "pos_nll"
NEG_NLL = "neg_nll"
NLL_RATIO = "nll_ratio"
BALANCE_RESIDUAL_NAIVE = "balance_residual_naive"
BALANCE_RESIDUAL = "balance_residual"
NONFINITE_FRAC = "nonfinite_frac"
# ASymPO's per-response scale s_i: quantiles over the micro-batch's responses.
SCALE_QUANTILES = {"s_p10": 0.1, "s_p50": 0.5, "s_p90": 0.9}


def scale_key(name: str, prefix: str = ACTOR) -> str:
    return f"{prefix}/{SCALE}/{name}"


def floored_key(prefix: str = ACTOR) -> str:
    return f"{prefix}/asympo/floored_frac"


def asympo_scale_key(name: str, prefix: str = ACTOR) -> str:
    return f"{prefix}/asympo/{name}"


# verl's trainer metrics the harness, the demo and the study read.
REWARD = "critic/score/mean"
STEP_TIME = "timing_s/step"
GEN_TIME = "timing_s/gen"
OLD_LOG_PROB_TIME = "timing_s/old_log_prob"
UPDATE_ACTOR_TIME = "timing_s/update_actor"
# Measured per trajectory by the CPU backend (asympo_plugin/verl/cpu/staleness.py).
STALENESS_PREFIX = "asympo/staleness"
STALENESS = f"{STALENESS_PREFIX}/mean"
# Logged (1.0) by every trainer step whose old-log-prob stage the plugin skipped.
OLD_LOG_PROB_SKIPPED = "behavior_free/old_log_prob_skipped"
# actor/entropy as verl logs it (over the batch, before the update) and as a behavior-free run logs it
# (per micro-batch, from the update's own forward): different measurements, different names.
ENTROPY = "actor/entropy"
ENTROPY_UPDATE = "actor/entropy_update_forward"
# verl's own metrics the study reads for user runs.
GRAD_NORM = "actor/grad_norm"
VERL_STALENESS = "training/off_policy/trajectory_staleness/mean"  # verl V1 trainer, per trajectory
FULLY_ASYNC_STALE_TRAJ = "fully_async/count/stale_trajectory_processed"  # cumulative count
FULLY_ASYNC_PARAM_VERSION = "fully_async/count/current_param_version"
