"""Math reward for the recipes: 1.0 if the response's final answer equals the reference, else 0.0.

Equivalence is decided by HuggingFace's maintained verifier ``math-verify`` (PyPI ``math-verify``):
the reference and the response's last ``\\boxed{}`` (or final expression) are parsed into SymPy and
compared symbolically, so ``\\frac12``, ``0.5`` and ``1/2`` agree.

verl calls :func:`compute_score` as a custom reward function
(``reward.custom_reward_function.path=pkg://asympo_plugin.verl.math_reward``, ``name=compute_score``)
with the decoded response and the row's ``reward_model.ground_truth`` (written by
``asympo_plugin.verl.data_prep``), from its reward manager's executor *threads*. math-verify bounds its
parsing time with ``signal.alarm``, which only works in a main thread, so each check runs in a
small spawned process pool (as verl's own ``verl.utils.reward_score.math_verify`` does). Unlike
that wrapper, a broken pool is rebuilt instead of scoring every later response 0, and a missing
``math-verify`` is an import error here, not a silent 0.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

if importlib.util.find_spec("math_verify") is None:
    raise ImportError(
        "asympo_plugin.verl.math_reward needs the math-verify package: pip install 'math-verify==0.9.0' "
        "(pure Python; it uses the sympy and antlr4 runtime that verl already installs)."
    )

logger = logging.getLogger(__name__)

VERIFY_TIMEOUT_S = 10.0  # per response, once the pool is up; a timeout scores 0
POOL_START_TIMEOUT_S = 300.0  # a spawned worker imports this package (and so verl) before its first check
POOL_WORKERS = 2

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def verify_answer(ground_truth: str, response: str) -> float:
    """1.0 if ``response``'s final answer is mathematically equal to ``ground_truth`` (runs in the pool)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = parse("\\boxed{" + ground_truth + "}", (LatexExtractionConfig(),))
    answer = parse(response, (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()))
    return 1.0 if gold and answer and verify(gold, answer) else 0.0


def _get_pool(broken: ProcessPoolExecutor | None = None) -> ProcessPoolExecutor:
    """The process pool, started (and warmed up, so start-up never counts as a verify timeout) on first use."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool is broken:
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            pool = ProcessPoolExecutor(max_workers=POOL_WORKERS, mp_context=multiprocessing.get_context("spawn"))
            warmups = [pool.submit(verify_answer, "1", "\\boxed{1}") for _ in range(POOL_WORKERS)]
            for warmup in warmups:
                warmup.result(timeout=POOL_START_TIMEOUT_S)
            _pool = pool
        return _pool


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    timeout: float = VERIFY_TIMEOUT_S,
    **_: Any,
) -> dict[str, float]:
    """``{"score": 1.0 or 0.0, "acc": same}``. ``ground_truth`` may be a list of accepted forms."""
    golds = [str(g) for g in ground_truth] if isinstance(ground_truth, list | tuple) else [str(ground_truth)]
    score = 0.0
    for gold in golds:
        pool = _get_pool()
        try:
            score = pool.submit(verify_answer, gold, solution_str).result(timeout=timeout)
        except FutureTimeout:
            logger.warning("math_reward: verification timed out after %.0f s; scoring 0", timeout)
        except BrokenProcessPool:  # a worker died (e.g. killed for memory): rebuild once, then fail loudly
            score = _get_pool(broken=pool).submit(verify_answer, gold, solution_str).result(timeout=timeout)
        if score:
            break
    return {"score": float(score), "acc": float(score)}
