"""Reading verl runs and reducing each to the numbers of the head-to-head table.

Inputs are what verl writes: its JSONL ``file`` logger (``{"step": s, "data": {...}}`` per line,
``verl/utils/tracking.py::FileLogger``) or TensorBoard event files (``_TensorboardAdapter``), plus,
when present next to them, the run's resolved config (``config.yaml``, written by the study runner,
or Hydra's ``.hydra/config.yaml``).

Every number is a pure function of those metrics, so the study's own runs and a user's runs go
through the same code. The fixed definitions (collapse, threshold, windows) are module constants
and were chosen before any result was looked at.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..core import metrics as names  # noqa: E402
from ..core.metrics import OLD_LOG_PROB_SKIPPED as SKIPPED  # noqa: E402  (the one module of metric names)
from ..core.metrics import OLD_LOG_PROB_TIME as OLD_LOG_PROB  # noqa: E402
from ..core.metrics import REWARD, STALENESS, STEP_TIME  # noqa: E402,F401
from ..core.metrics import UPDATE_ACTOR_TIME as UPDATE_ACTOR  # noqa: E402

VERL_STALENESS = "training/off_policy/trajectory_staleness/mean"  # verl V1 trainer's own metric
SCALE_KEYS = tuple(
    names.scale_key(k) for k in (names.POS_NLL, names.NEG_NLL, names.BALANCE_RESIDUAL_NAIVE, names.BALANCE_RESIDUAL)
)
# Metrics whose non-finite value means the weights were poisoned (part of the collapse criterion).
FINITE_KEYS = ("actor/pg_loss", "actor/loss", "actor/grad_norm")
# Metrics verl logs only when the rollout shipped per-token log-probs (rollout-vs-actor comparisons).
ROLLOUT_LOG_PROB_EVIDENCE = ("rollout_corr/", "training/rollout_probs_diff", "training/rollout_actor_probs")

# ---- fixed definitions (decided before looking at results) ----------------------------------------
WINDOW = 5  # steps in every trailing mean of the reward
COLLAPSE_FRACTION = 0.5  # collapsed: the trailing mean ends below this fraction of its running peak ...
COLLAPSE_MIN_PEAK = 0.1  # ... of a peak at least this high (below, 64-sample reward noise dominates)
REWARD_THRESHOLD = 0.5  # "steps to threshold": first step whose trailing mean reaches this reward
BYTES_PER_LOG_PROB = 4  # one fp32 per response token when the rollout ships behavior log-probs


@dataclass
class Run:
    """One verl run: its metrics per step, its config if known, and what the study knows about it."""

    name: str
    metrics: dict[int, dict]
    config: dict | None = None
    source: Path | None = None
    method: str | None = None  # study runs: the matrix method; user runs: derived from the config
    label: str | None = None
    staleness: int | None = None  # study runs: the level asked for (the measured one is in summarize)
    seed: int | None = None
    wall_s: float | None = None
    extra: dict = field(default_factory=dict)

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, float(m[key])) for s, m in sorted(self.metrics.items()) if key in m and m[key] is not None]

    def train_steps(self) -> list[int]:
        return sorted(s for s, m in self.metrics.items() if STEP_TIME in m)


# ---- the collapse criterion ---------------------------------------------------------------------------


def trailing_mean(values: list[float], window: int = WINDOW) -> list[float]:
    """Mean of the last ``window`` values at every position (fewer at the start)."""
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


@dataclass(frozen=True)
class Collapse:
    collapsed: bool
    step: int | None  # first step of the final collapse (or of the first non-finite metric)
    reason: str


def detect_collapse(
    steps: list[int],
    rewards: list[float],
    nonfinite_steps: list[int] = (),
    *,
    window: int = WINDOW,
    fraction: float = COLLAPSE_FRACTION,
    min_peak: float = COLLAPSE_MIN_PEAK,
) -> Collapse:
    """Whether a run collapsed. Fixed criterion, written down before any result was seen.

    A run collapsed if either

    1. a loss or gradient metric (:data:`FINITE_KEYS`) was ever non-finite (``nonfinite_steps``):
       the weights are poisoned whatever the reward says; or
    2. the reward's trailing mean (``window`` steps) *ends* the run below ``fraction`` of its running
       peak, and that peak was at least ``min_peak``. Peaks count only full windows (when the run has
       ``window`` steps), so one lucky early step is not a peak. Ending below, not dipping below: a run that
       dips and recovers did not collapse. The collapse step is the first step from which the trailing
       mean stays below ``fraction`` x running peak until the end.

    Pure function of its arguments (``steps`` and ``rewards`` aligned, in step order).
    """
    if len(steps) != len(rewards):
        raise ValueError(f"steps and rewards differ in length ({len(steps)} vs {len(rewards)})")
    if nonfinite_steps:
        return Collapse(True, min(nonfinite_steps), "non-finite loss or gradient")
    if not rewards:
        return Collapse(False, None, "no reward logged")
    if any(not math.isfinite(r) for r in rewards):
        first = next(s for s, r in zip(steps, rewards) if not math.isfinite(r))
        return Collapse(True, first, "non-finite reward")
    smooth = trailing_mean(list(rewards), window)
    # Peaks only from full windows (when the run is that long): one lucky early step is not a peak.
    first_full = window - 1 if len(smooth) >= window else 0
    peaks = [max(smooth[min(first_full, i) : i + 1]) for i in range(len(smooth))]
    below = [peak >= min_peak and value < fraction * peak for value, peak in zip(smooth, peaks)]
    if not below[-1]:
        return Collapse(False, None, "")
    start = len(below) - 1
    while start > 0 and below[start - 1]:
        start -= 1
    return Collapse(True, steps[start], f"reward trailing mean {smooth[-1]:.3f} < {fraction:g} x peak {peaks[-1]:.3f}")


# ---- per-run numbers -----------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def steady_steps(run: Run) -> list[int]:
    """Training steps without the first one (which includes warm-up: compilation, first sync)."""
    steps = run.train_steps()
    return steps[1:] if len(steps) > 1 else steps


def _config_get(config: dict | None, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def behavior_bytes_per_token(run: Run) -> tuple[int | None, str]:
    """Bytes of behavior log-probs the rollout shipped per response token, and where that came from.

    From the run's config when known (``actor_rollout_ref.rollout.calculate_log_probs``: the rollout
    returns one fp32 log-prob per token); else from the metrics (verl logs rollout-vs-actor
    comparisons only when rollout log-probs exist); else unknown.
    """
    shipped = _config_get(run.config, "actor_rollout_ref.rollout.calculate_log_probs")
    if shipped is not None:
        return (BYTES_PER_LOG_PROB if bool(shipped) else 0), "config"
    keys = {k for m in run.metrics.values() for k in m}
    if any(k.startswith(prefix) for k in keys for prefix in ROLLOUT_LOG_PROB_EVIDENCE):
        return BYTES_PER_LOG_PROB, "metrics"
    return None, "unknown"


def measured_staleness(run: Run) -> dict:
    """Measured staleness: mean over all training steps and over the steps after the warm-up.

    The warm-up is the first ``max staleness`` steps, where fewer older versions exist. Prefers the
    plugin's per-trajectory metric; falls back to verl V1's own (synchronous and V1 async trainers).
    """
    for key in (STALENESS, VERL_STALENESS):
        series = [(s, v) for s, v in run.series(key) if s in set(run.train_steps())]
        if series:
            values = [v for _, v in series]
            peak = max(values)
            steady = [v for _, v in series[int(math.ceil(peak)) :]] or values
            return {"key": key, "mean": statistics.mean(values), "steady": statistics.mean(steady), "max": peak}
    return {"key": None, "mean": None, "steady": None, "max": None}


def val_reward_key(run: Run) -> str | None:
    keys = sorted({k for m in run.metrics.values() for k in m if k.startswith("val-core/") and k.endswith("/mean@1")})
    return keys[0] if keys else None


def summarize(run: Run) -> dict:
    """The table's numbers for one run (``None`` where the run has no data for it)."""
    steps = run.train_steps()
    reward = [(s, v) for s, v in run.series(REWARD) if s in set(steps)]
    values = [v for _, v in reward]
    smooth = trailing_mean(values)
    nonfinite = sorted(
        s for s in steps for k in FINITE_KEYS if k in run.metrics[s] and not math.isfinite(float(run.metrics[s][k]))
    )
    collapse = detect_collapse([s for s, _ in reward], values, nonfinite)
    full = smooth[WINDOW - 1 :] if len(smooth) >= WINDOW else smooth  # full trailing windows only
    reached = next(
        (s for (s, _), m in list(zip(reward, smooth))[len(smooth) - len(full) :] if m >= REWARD_THRESHOLD), None
    )
    steady = steady_steps(run)
    step_time = _median([float(run.metrics[s][STEP_TIME]) for s in steady])
    update = _median([float(run.metrics[s].get(UPDATE_ACTOR, 0.0)) for s in steady])
    old_lp = _median([float(run.metrics[s].get(OLD_LOG_PROB, 0.0)) for s in steady])
    gen = _median([float(run.metrics[s]["timing_s/gen"]) for s in steady if "timing_s/gen" in run.metrics[s]])
    bytes_per_token, bytes_source = behavior_bytes_per_token(run)
    val_key = val_reward_key(run)
    val = run.series(val_key) if val_key else []
    return {
        "steps": len(steps),
        "reward_start": full[0] if full else None,  # mean of the first WINDOW steps
        "final_reward": smooth[-1] if smooth else None,
        "best_reward": max(full) if full else None,
        "steps_to_threshold": reached,
        "collapsed": collapse.collapsed,
        "collapse_step": collapse.step,
        "collapse_reason": collapse.reason,
        "s_per_step": step_time,
        "learner_s_per_step": update,
        "old_log_prob_s_per_step": old_lp,
        "gen_s_per_step": gen,
        "old_log_prob_skipped": any(run.metrics[s].get(SKIPPED) for s in steps),
        "behavior_bytes_per_token": bytes_per_token,
        "behavior_bytes_source": bytes_source,
        "final_val_reward": val[-1][1] if val else None,
        "staleness": measured_staleness(run),
    }


# ---- loading -------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> dict[int, dict]:
    """verl's JSONL file logger, merged per step (the same format ``asympo_plugin.demo.read_metrics`` reads)."""
    from ..demo import read_metrics

    return read_metrics(Path(path))


def read_tensorboard(path: Path) -> dict[int, dict]:
    """Every scalar of a TensorBoard event file (or directory of them), merged per step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    steps: dict[int, dict] = {}
    for tag in accumulator.Tags().get("scalars", []):
        for event in accumulator.Scalars(tag):
            steps.setdefault(int(event.step), {})[tag] = float(event.value)
    return steps


def _load_config(folder: Path) -> dict | None:
    from omegaconf import OmegaConf

    for candidate in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if candidate.exists():
            return OmegaConf.to_container(OmegaConf.load(candidate), resolve=False)
    return None


def _reads_behavior_log_probs(loss: str) -> bool:
    """The registry's flag (verl's losses and the plugin's); a loss this verl does not know counts as reading them."""
    try:
        from ..verl.losses import needs_behavior_log_probs

        return needs_behavior_log_probs(loss)
    except Exception:  # noqa: BLE001 - an unknown loss (another verl, a user's own): assume PPO-like
        return True


def method_from_config(config: dict | None) -> str | None:
    """A readable method name from a verl config: loss, advantage estimator, where old log-probs came from."""
    if not config:
        return None
    loss = _config_get(config, "actor_rollout_ref.actor.policy_loss.loss_mode") or "vanilla"
    adv = _config_get(config, "algorithm.adv_estimator")
    if _reads_behavior_log_probs(loss):
        bypass = _config_get(config, "algorithm.rollout_correction.bypass_mode")
        return f"{loss} ({'rollout' if bypass else 'recomputed'} old log-probs, {adv} adv.)"
    return f"{loss} ({adv} adv.)"


def load_run(path: Path, name: str | None = None) -> Run:
    """A run from a JSONL file, a TensorBoard event file, or a directory holding either."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or log file")
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        jsonl = sorted(path.glob("*.jsonl")) or sorted(path.glob("**/*.jsonl"))
        events = sorted(path.glob("**/events.out.tfevents.*"))
        if jsonl:
            metrics, source = read_jsonl(jsonl[0]), jsonl[0]
        elif events:
            metrics, source = read_tensorboard(events[0].parent), events[0].parent
        else:
            raise ValueError(f"{path}: no verl JSONL log (*.jsonl) and no TensorBoard event file inside")
    elif path.suffix == ".jsonl" or path.name.endswith(".json"):
        metrics, source = read_jsonl(path), path
    elif "tfevents" in path.name:
        metrics, source = read_tensorboard(path), path
    else:
        raise ValueError(f"{path}: not a verl JSONL log (*.jsonl) or a TensorBoard event file (events.out.tfevents.*)")
    if not metrics:
        raise ValueError(f"{source}: no metrics in it")
    config = _load_config(folder)
    default = folder.name if path.is_dir() or path.stem == "metrics" else path.stem
    if re.fullmatch(r"seed\d+", default):  # <method>/seed<N>/ as the study lays runs out
        default = f"{folder.parent.name}_{default}"
    run = Run(name=name or default, metrics=metrics, config=config, source=source)
    run.method = method_from_config(config) or re.sub(r"[-_.]?seed\d+$", "", run.name)
    run.label = run.method
    return run
