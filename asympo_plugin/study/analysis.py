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

from ..core.metrics import VERL_STALENESS  # noqa: E402  (verl V1 trainer's own metric)

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
BOOTSTRAP_RESAMPLES = 10_000  # docs/STUDY_METHOD.md: percentile bootstrap of the mean over seeds
BOOTSTRAP_SEED = 20261202
BOOTSTRAP_LEVEL = 0.95
CHANGE_SIGMAS = 3.0  # mechanism: a diagnostic "changed" when the windows differ by > 3 baseline sd ...
CHANGE_REL = 0.05  # ... and by > 5% of the baseline mean


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
    finished_utc: str | None = None  # study runs: from the marker (ISO 8601); None when not recorded
    task_model: str | None = None  # study runs: the task model's weights hash prefix, from the marker
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


def max_drawdown(steps: list[int], rewards: list[float], *, window: int = WINDOW) -> dict:
    """Largest drop of the reward's trailing mean below its running peak (full windows only).

    ``{"drop": peak - trough, "relative": drop / peak (None when peak is 0), "peak_step", "trough_step"}``;
    ``drop`` is 0 for a run that never falls. Definition in docs/STUDY_METHOD.md.
    """
    if len(steps) != len(rewards):
        raise ValueError(f"steps and rewards differ in length ({len(steps)} vs {len(rewards)})")
    empty = {"drop": None, "relative": None, "peak_step": None, "trough_step": None}
    if not rewards:
        return empty
    smooth = trailing_mean(list(rewards), window)
    first = window - 1 if len(smooth) >= window else 0
    best = {"drop": 0.0, "relative": 0.0, "peak_step": steps[first], "trough_step": steps[first]}
    peak, peak_i = -math.inf, first
    for i in range(first, len(smooth)):
        if smooth[i] > peak:
            peak, peak_i = smooth[i], i
        drop = peak - smooth[i]
        if drop > best["drop"]:
            best = {
                "drop": drop,
                "relative": drop / peak if peak > 0 else None,
                "peak_step": steps[peak_i],
                "trough_step": steps[i],
            }
    return best


def bootstrap_ci(
    values: list[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = BOOTSTRAP_LEVEL,
) -> tuple[float | None, float | None, float | None]:
    """``(mean, low, high)``: the percentile bootstrap interval of the mean over seeds.

    Fixed seed and resample count (docs/STUDY_METHOD.md), so equal inputs give equal intervals.
    ``None`` values are left out; one value gives no interval (``low = high = None``).
    """
    import numpy as np

    data = np.asarray([float(v) for v in values if v is not None], dtype=float)
    if data.size == 0:
        return None, None, None
    if not np.all(np.isfinite(data)):
        raise ValueError(f"bootstrap_ci: non-finite value among {data.tolist()}; drop or report it separately")
    mean = float(data.mean())
    if data.size == 1:
        return mean, None, None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return mean, float(low), float(high)


# ---- explaining a collapse -----------------------------------------------------------------------------

# (label, metric key) of every diagnostic shown around a collapse, in table order.
MECHANISM_KEYS = (
    ("sampler reward", REWARD),
    ("pos NLL (A > 0)", names.scale_key(names.POS_NLL)),
    ("neg NLL (A < 0)", names.scale_key(names.NEG_NLL)),
    ("balance residual (loss)", names.scale_key(names.BALANCE_RESIDUAL)),
    ("balance residual (naive)", names.scale_key(names.BALANCE_RESIDUAL_NAIVE)),
    *((f"s_i {q[3:]}th pct", names.asympo_scale_key(q)) for q in names.SCALE_QUANTILES),
    ("floored fraction", names.floored_key()),
    ("grad norm", names.GRAD_NORM),
)


def mechanism(run: Run, collapse_step: int, *, window: int = WINDOW) -> dict:
    """The diagnostics around a collapse: baseline vs collapse window, per diagnostic (docs/STUDY_METHOD.md).

    Returns ``{"rows": [{label, key, baseline, collapse, last, change, changed}], "baseline_steps",
    "collapse_steps", "short_baseline", "text"}``; a diagnostic the run never logged has ``baseline``
    ``None`` and is named in the text as not logged.
    """
    steps = run.train_steps()
    after = [s for s in steps if s >= collapse_step][:window]
    before = [s for s in steps if s < collapse_step]
    baseline = [s for s in before if collapse_step - 2 * window <= s < collapse_step - window]
    short = len(baseline) < window
    if short:
        baseline = before[-window:]
    rows, changed, missing = [], [], []
    for label, key in MECHANISM_KEYS:
        series = dict(run.series(key))
        if not series:
            rows.append(
                {
                    "label": label,
                    "key": key,
                    "baseline": None,
                    "collapse": None,
                    "last": None,
                    "change": None,
                    "changed": False,
                }
            )
            missing.append(label)
            continue
        base = [series[s] for s in baseline if s in series and math.isfinite(series[s])]
        hit = [series[s] for s in after if s in series]
        last = series[max(series)]
        row = {
            "label": label,
            "key": key,
            "baseline": statistics.mean(base) if base else None,
            "collapse": statistics.mean(hit)
            if hit and all(math.isfinite(v) for v in hit)
            else (math.nan if hit else None),
            "last": last,
            "change": None,
            "changed": False,
        }
        if row["baseline"] is not None and row["collapse"] is not None:
            row["change"] = row["collapse"] - row["baseline"]
            sd = statistics.stdev(base) if len(base) > 1 else 0.0
            bar = max(CHANGE_SIGMAS * sd, CHANGE_REL * abs(row["baseline"]), 1e-6)
            row["changed"] = not math.isfinite(row["change"]) or abs(row["change"]) > bar
            if row["changed"]:
                changed.append(row)
        rows.append(row)
    where = (f"steps {baseline[0]}-{baseline[-1]}" if baseline else "no steps") + (
        " (fewer than a full window before the collapse)" if short else ""
    )
    if changed:
        parts = [
            f"{r['label']} {'rose' if r['change'] > 0 else 'fell'} from {r['baseline']:.4g} to {r['collapse']:.4g}"
            if math.isfinite(r["change"])
            else f"{r['label']} became non-finite"
            for r in changed
        ]
        text = (
            f"Around step {collapse_step} (baseline {where}, collapse steps {after[0]}-{after[-1]}): "
            + "; ".join(parts)
            + "."
        )
    else:
        text = f"Around step {collapse_step} (baseline {where}): none of the logged diagnostics changed."
    if missing:
        text += " Not logged: " + ", ".join(missing) + "."
    return {"rows": rows, "baseline_steps": baseline, "collapse_steps": after, "short_baseline": short, "text": text}


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


def pipeline_of(config: dict | None) -> str | None:
    """Which verl pipeline a resolved config belongs to (the launcher's rule): sync, one-step-off, fully-async."""
    if not config:
        return None
    if "async_training" in config:
        return "fully-async"
    if "rollout" in config:  # the one-step-off trainer's top-level rollout resource section
        return "one-step-off"
    return "sync"


def measured_staleness(run: Run) -> dict:
    """Staleness of the run's training data: measured where a metric says it, else the pipeline's structure.

    In order: the plugin's per-trajectory metric (``asympo/staleness/mean``, CPU backend); verl V1's own
    ``training/off_policy/trajectory_staleness/mean`` (sync and V1 async trainers); for verl's fully-async
    trainer, the stale-trajectory count it logs (``fully_async/count/stale_trajectory_processed``, cumulative:
    its per-step increase over the trajectories of that step is the fraction trained on older weights, a
    lower bound of the mean staleness, reported as ``steady``), with ``async_training.staleness_threshold``
    + 1 as the bound (``max``); for one-step-off, 1 by construction (verl's pipeline logs no staleness);
    for the sync trainer without the metric, 0. ``mean`` and ``steady`` exclude the warm-up (the first
    ``max`` steps). ``key`` says which source was used; never a directory name.
    """
    train = set(run.train_steps())
    for key in (STALENESS, VERL_STALENESS):
        series = [(s, v) for s, v in run.series(key) if s in train]
        if series:
            values = [v for _, v in series]
            peak = max(values)
            steady = [v for _, v in series[int(math.ceil(peak)) :]] or values
            return {"key": key, "mean": statistics.mean(values), "steady": statistics.mean(steady), "max": peak}
    pipeline = pipeline_of(run.config)
    counts = [(s, v) for s, v in run.series(names.FULLY_ASYNC_STALE_TRAJ) if s in train]
    if counts or pipeline == "fully-async":
        threshold = _config_get(run.config, "async_training.staleness_threshold")
        bound = float(threshold) + 1.0 if threshold is not None else None
        per_step = _config_get(run.config, "actor_rollout_ref.actor.ppo_mini_batch_size")
        n = _config_get(run.config, "actor_rollout_ref.rollout.n") or 1
        fractions = []
        if counts and per_step:
            previous = 0.0
            for _, v in counts:
                # clamped: verl can log two records under one step number, which then merge
                fractions.append(min(1.0, max(0.0, (v - previous) / (float(per_step) * float(n)))))
                previous = v
        steady = fractions[int(math.ceil(bound or 0)) :] or fractions
        return {
            "key": names.FULLY_ASYNC_STALE_TRAJ + " (stale fraction; lower bound)"
            if fractions
            else "config: fully-async",
            "mean": statistics.mean(fractions) if fractions else None,
            "steady": statistics.mean(steady) if steady else None,
            "max": bound,
            "bound": bound,
            "pipeline": "fully-async",
        }
    if pipeline == "one-step-off":
        return {"key": "structure: one-step-off", "mean": 1.0, "steady": 1.0, "max": 1.0, "pipeline": pipeline}
    if pipeline == "sync":
        return {"key": "structure: sync", "mean": 0.0, "steady": 0.0, "max": 0.0, "pipeline": pipeline}
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
    val = [(s, v) for s, v in run.series(val_key)] if val_key else []
    drawdown = max_drawdown([s for s, _ in reward], values)
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
        "best_val_reward": max(v for _, v in val) if val else None,
        "val_key": val_key,
        "max_drawdown": drawdown["drop"],
        "max_drawdown_relative": drawdown["relative"],
        "max_drawdown_trough_step": drawdown["trough_step"],
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


def method_from_config(config: dict | None, metrics: dict[int, dict] | None = None) -> tuple[str, str] | None:
    """``(method id, readable label)`` from a resolved verl config, or ``None`` without a config.

    The id is the study's method name when the config is one of them (so timing ratios and the reference
    row work on users' runs): ``asympo``, ``spo``, ``naive`` (gpg loss, GRPO adv.), ``gpg`` (gpg loss and
    adv.), ``ppo_bypass`` (vanilla loss, rollout log-probs as old log-probs), ``ppo_recompute`` (vanilla,
    old log-probs recomputed by the actor), ``grpo_sync`` (vanilla, GRPO adv., sync trainer). Old log-probs
    count as the rollout's when ``algorithm.rollout_correction.bypass_mode`` or the actor's
    ``use_rollout_log_probs`` (fully-async) is true; when neither key is set, an old-log-prob stage in the
    metrics (``timing_s/old_log_prob``) means recomputed. Anything else keeps a readable id.
    """
    if not config:
        return None
    loss = _config_get(config, "actor_rollout_ref.actor.policy_loss.loss_mode") or "vanilla"
    adv = _config_get(config, "algorithm.adv_estimator")
    pipeline = pipeline_of(config)
    if loss in ("asympo", "spo") and adv in (None, "grpo"):
        return loss, f"{loss} ({adv or 'default'} adv.)"
    if loss == "gpg":
        if adv == "grpo":
            return "naive", "naive (gpg loss, GRPO adv.)"
        if adv == "gpg":
            return "gpg", "GPG (gpg loss, GPG adv.)"
    bypass = _config_get(config, "algorithm.rollout_correction.bypass_mode")
    rollout_lp = _config_get(config, "actor_rollout_ref.actor.use_rollout_log_probs")
    if bypass is None and rollout_lp is None:
        recomputed = any(float(m.get(OLD_LOG_PROB, 0.0) or 0.0) > 0 for m in (metrics or {}).values())
        from_rollout = not recomputed
    else:
        from_rollout = bool(bypass) or bool(rollout_lp)
    if loss != "vanilla" and not _reads_behavior_log_probs(loss):  # (imports verl: only when needed)
        return f"{loss} ({adv} adv.)", f"{loss} ({adv} adv.)"
    if loss == "vanilla":
        if from_rollout:
            return "ppo_bypass", "PPO-clip, rollout log-probs (bypass)"
        if pipeline == "sync" and adv == "grpo":
            return "grpo_sync", "GRPO, sync (on-policy reference)"
        return "ppo_recompute", "PPO-clip, recomputed old log-probs"
    text = f"{loss} ({'rollout' if from_rollout else 'recomputed'} old log-probs, {adv} adv.)"
    return text, text


def load_run(path: Path, name: str | None = None, config_path: Path | None = None) -> Run:
    """A run from a JSONL file, a TensorBoard event file, or a directory holding either.

    ``config_path``: the run's resolved config (YAML), when it is not next to the log as ``config.yaml``
    or Hydra's ``.hydra/config.yaml``.
    """
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
    if config_path is not None:
        if not Path(config_path).is_file():
            raise FileNotFoundError(f"{config_path}: no such config file (give the run's resolved YAML config)")
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
    else:
        config = _load_config(folder)
    default = folder.name if path.is_dir() or path.stem == "metrics" else path.stem
    if re.fullmatch(r"seed\d+", default):  # <method>/seed<N>/ as the study lays runs out
        default = f"{folder.parent.name}_{default}"
    run = Run(name=name or default, metrics=metrics, config=config, source=source)
    derived = method_from_config(config, metrics)
    if derived:
        run.method, run.label = derived
    else:  # no config: the name is all there is (the report says the method is unverified)
        run.method = run.label = re.sub(r"[-_.]?seed\d+$", "", run.name)
        run.extra["method_source"] = "name (no config)"
    return run
