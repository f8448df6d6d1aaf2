"""The study's fixed collapse criterion (``asympo_plugin.study.analysis.detect_collapse``) on synthetic curves."""

from __future__ import annotations

import math

import pytest

from asympo_plugin.study.analysis import (
    COLLAPSE_FRACTION,
    WINDOW,
    Run,
    detect_collapse,
    summarize,
    trailing_mean,
)


def _steps(values):
    return list(range(1, len(values) + 1))


def test_trailing_mean_uses_what_exists_at_the_start():
    assert trailing_mean([1.0, 3.0, 5.0], window=2) == [1.0, 2.0, 4.0]


def test_steady_improvement_is_not_collapse():
    rewards = [0.3 + 0.01 * i for i in range(40)]
    assert detect_collapse(_steps(rewards), rewards).collapsed is False


def test_noisy_plateau_is_not_collapse():
    rewards = [0.35 + (0.08 if i % 2 else -0.08) for i in range(40)]
    assert detect_collapse(_steps(rewards), rewards).collapsed is False


def test_rise_then_fall_to_zero_is_collapse_with_its_start_step():
    rewards = [0.3] * 10 + [0.6] * 10 + [0.0] * 15
    result = detect_collapse(_steps(rewards), rewards)
    assert result.collapsed is True
    # The trailing mean first drops below 0.5 x 0.6 a couple of steps into the zeros, and stays there.
    assert 21 <= result.step <= 21 + WINDOW
    assert "peak" in result.reason


def test_dip_and_recovery_is_not_collapse():
    rewards = [0.5] * 10 + [0.0] * 8 + [0.5] * 12
    assert detect_collapse(_steps(rewards), rewards).collapsed is False


def test_falling_just_short_of_the_fraction_is_not_collapse():
    rewards = [0.6] * 10 + [0.6 * COLLAPSE_FRACTION + 0.01] * 20
    assert detect_collapse(_steps(rewards), rewards).collapsed is False


def test_tiny_peaks_are_noise_not_collapse():
    rewards = [0.05, 0.08, 0.06, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert detect_collapse(_steps(rewards), rewards).collapsed is False


def test_nonfinite_loss_is_collapse_whatever_the_reward():
    rewards = [0.3 + 0.01 * i for i in range(20)]
    result = detect_collapse(_steps(rewards), rewards, nonfinite_steps=[12, 15])
    assert result.collapsed is True and result.step == 12


def test_nonfinite_reward_is_collapse():
    rewards = [0.3, 0.4, math.nan, 0.4]
    assert detect_collapse(_steps(rewards), rewards).collapsed is True


def test_mismatched_inputs_fail_loudly():
    with pytest.raises(ValueError, match="differ in length"):
        detect_collapse([1, 2], [0.1])


def test_summarize_reads_nonfinite_grad_norm_from_verl_metrics():
    metrics = {
        s: {"critic/score/mean": 0.4, "timing_s/step": 1.0, "actor/grad_norm": 1.0, "actor/pg_loss": 0.1}
        for s in range(1, 11)
    }
    metrics[7]["actor/grad_norm"] = float("inf")
    summary = summarize(Run(name="synthetic", metrics=metrics))
    assert summary["collapsed"] is True and summary["collapse_step"] == 7
    assert summary["final_reward"] == pytest.approx(0.4)
