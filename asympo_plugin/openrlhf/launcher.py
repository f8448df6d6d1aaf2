"""``asympo-openrlhf``: OpenRLHF 0.11.2's own ``train_ppo_ray`` CLI with ``--actor.policy_loss_type asympo|spo``.

::

    asympo-openrlhf [every flag of python -m openrlhf.cli.train_ppo_ray] \\
        --actor.policy_loss_type asympo|spo|ppo|gspo \\
        [--actor.asympo_eps 0.01] [--actor.spo_neg_scale 0.5] [--actor.asympo_allow_unbalanced_agg] \\
        [--asympo.dry_run] [--asympo.cpu]

What it does, in order, all before Ray starts:

1. takes its own flags out of the command line; OpenRLHF's parser gets ``--actor.policy_loss_type ppo`` for
   a plugin loss (its ``choices`` are ppo/gspo) and, for ``asympo`` without an explicit
   ``--actor.loss_agg_mode``, ``seq-mean-token-mean`` (ASymPO's zero-sum balance needs it);
2. refuses an OpenRLHF other than 0.11.2 (``importlib.metadata``) and any patch whose target changed;
3. runs OpenRLHF's own CLI module (``runpy``, as ``__main__``): right after its parser
   (``openrlhf.utils.config.hierarchize``, patched for this process only: ``openrlhf_cli_plugin_loss``) the
   real loss type and settings are written into ``args`` (every Ray actor gets them inside
   ``strategy.args``) and checked: bad values, and settings that read behavior log-probs a behavior-free
   loss never computes (reward KL, ``--algo.kl.unbiased_gradient``, rollout correction), are refused with
   the fix named (exit status 2);
4. starts Ray with OpenRLHF's own three environment variables plus ``worker_process_setup_hook``
   (``worker.setup``: the patches, in every worker); ``train()`` then finds Ray initialized and goes on.

``--actor.policy_loss_type ppo|gspo`` runs OpenRLHF's stock losses unchanged (the patches leave them alone).
``--asympo.dry_run`` stops after step 3's checks and prints the resolved loss settings.
``--asympo.cpu`` is CPU/test support (``cpu/``): placeholder GPUs for Ray, the CPU shims in every process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import sys

from ..core import fields
from ..core.policy_loss import PLUGIN_LOSSES, is_behavior_free
from ..patching import Patch, PatchError
from .compat import DISTRIBUTION, INSTALL_HINT, VERSIONS, OpenRLHFVersionError, check_openrlhf
from .settings import FLAG

CLI_MODULE = "openrlhf.cli.train_ppo_ray"
STOCK_LOSSES = ("ppo", "gspo")
# train_ppo_ray.train() passes exactly these to ray.init when it starts Ray itself (:21-32).
STOCK_RAY_ENV = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}


class LauncherError(ValueError):
    """A bad command line; the message names the fix."""


class _DryRun(Exception):
    def __init__(self, args):
        super().__init__("dry run")
        self.parsed = args


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _plugin_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asympo-openrlhf", add_help=False, allow_abbrev=False)
    p.add_argument("--actor.policy_loss_type", dest="loss", default="ppo")
    p.add_argument("--actor.asympo_eps", dest="asympo_eps", type=_number_or_text, default=None)
    p.add_argument("--actor.spo_neg_scale", dest="spo_neg_scale", type=_number_or_text, default=None)
    p.add_argument("--actor.asympo_allow_unbalanced_agg", dest="allow_unbalanced", action="store_true")
    p.add_argument("--asympo.dry_run", dest="dry_run", action="store_true")
    p.add_argument("--asympo.cpu", dest="cpu", action="store_true")
    return p


def split_argv(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """``(plugin options, the command line for OpenRLHF's own parser)``; refuses an unknown loss type."""
    ours, rest = _plugin_parser().parse_known_args(argv)
    known = (*PLUGIN_LOSSES, *STOCK_LOSSES)
    if ours.loss not in known:
        raise LauncherError(
            f"{FLAG['policy_loss_type']}={ours.loss!r} is unknown: use one of {', '.join(known)} "
            "(asympo and spo are the plugin's behavior-free losses; ppo and gspo are OpenRLHF's own)."
        )
    for dest, flag, owner in (
        ("asympo_eps", FLAG["asympo_eps"], "asympo"),
        ("spo_neg_scale", FLAG["spo_neg_scale"], "spo"),
        ("allow_unbalanced", FLAG["asympo_allow_unbalanced_agg"], "asympo"),
    ):
        if getattr(ours, dest) not in (None, False) and ours.loss != owner:
            raise LauncherError(
                f"{flag} is a setting of {owner}, but {FLAG['policy_loss_type']}={ours.loss}: it would be ignored. "
                f"Drop {flag} or use {FLAG['policy_loss_type']} {owner}."
            )
    rest = list(rest)
    if is_behavior_free(ours.loss):
        rest += [FLAG["policy_loss_type"], "ppo"]  # OpenRLHF's parser only knows ppo/gspo
        if ours.loss == "asympo" and not any(a.split("=")[0] == FLAG["loss_agg_mode"] for a in rest):
            rest += [FLAG["loss_agg_mode"], fields.ASYMPO_AGG_MODE]
    elif ours.loss != "ppo" or any(a.split("=")[0] == FLAG["policy_loss_type"] for a in argv):
        rest += [FLAG["policy_loss_type"], ours.loss]
    return ours, rest


def apply_plugin_settings(args, ours: argparse.Namespace) -> None:
    """Write the real loss type and settings into OpenRLHF's hierarchized ``args`` and check the whole run."""
    from . import behavior_free
    from .settings import check_loss_settings

    if not is_behavior_free(ours.loss):
        return
    actor = args.actor
    actor.policy_loss_type = ours.loss
    actor.asympo_eps = fields.ASYMPO_EPS_DEFAULT if ours.asympo_eps is None else ours.asympo_eps
    actor.spo_neg_scale = fields.SPO_NEG_SCALE_DEFAULT if ours.spo_neg_scale is None else ours.spo_neg_scale
    actor.asympo_allow_unbalanced_agg = bool(ours.allow_unbalanced)
    check_loss_settings(
        ours.loss,
        actor.loss_agg_mode,
        actor.asympo_eps,
        actor.spo_neg_scale,
        actor.asympo_allow_unbalanced_agg,
        args.algo.advantage.is_correction_level,
    )
    actor.asympo_eps = float(actor.asympo_eps)
    actor.spo_neg_scale = float(actor.spo_neg_scale)
    behavior_free.check_args(args)


def ray_init_kwargs(cpu: bool) -> dict:
    """What the launcher passes to ``ray.init``: OpenRLHF's env vars, the setup hook, CPU placeholders."""
    from . import cpu as cpu_support
    from .worker import HOOK

    env_vars = {k: os.environ.get(k, v) for k, v in STOCK_RAY_ENV.items()}
    if cpu:
        env_vars.update(cpu_support.env())
        if os.environ.get(cpu_support.PROBE_ENV):
            env_vars[cpu_support.PROBE_ENV] = os.environ[cpu_support.PROBE_ENV]
    kwargs: dict = {"runtime_env": {"env_vars": env_vars, "worker_process_setup_hook": HOOK}}
    if cpu and not os.environ.get("RAY_ADDRESS"):
        kwargs.update(num_gpus=cpu_support.RAY_NUM_GPUS, num_cpus=cpu_support.RAY_NUM_CPUS)
    return kwargs


def _hierarchize_then(on_args):
    def make(original):
        def hierarchize(args):
            return on_args(original(args))

        return hierarchize

    return make


def _cli_patch(on_args) -> Patch:
    return Patch(
        name="openrlhf_cli_plugin_loss",
        why=(
            "train_ppo_ray builds its parser under __main__ (no hook) with --actor.policy_loss_type choices ppo/gspo; "
            "right after parsing, the launcher writes the plugin loss and its settings into args, checks the run and "
            "starts Ray with the worker setup hook. Only in asympo-openrlhf's own process."
        ),
        module="openrlhf.utils.config",
        attr="hierarchize",
        source_sha256="76aa82b2af592f581039dab0740783555a2c0f49dda01a54989edcfb185191b3",
        make_replacement=_hierarchize_then(on_args),
        distribution=DISTRIBUTION,
        versions=VERSIONS,
        install_hint=INSTALL_HINT,
    )


@contextlib.contextmanager
def _patched_hierarchize(on_args):
    """The CLI patch, for the duration of one run of OpenRLHF's CLI module in this process."""
    import openrlhf.utils.config as config

    original = config.hierarchize
    _cli_patch(on_args).apply()
    try:
        yield
    finally:
        config.hierarchize = original


def run(argv: list[str]) -> int:
    ours, rest = split_argv(argv)
    check_openrlhf()
    if ours.cpu:
        from . import cpu

        cpu.activate()
    from .. import patching
    from .wiring import PATCHES

    patching.preflight(PATCHES)  # imports OpenRLHF's trainer modules; a changed one raises PatchError here

    def on_args(args):
        apply_plugin_settings(args, ours)
        if ours.dry_run:
            raise _DryRun(args)
        import ray

        if not ray.is_initialized():
            ray.init(**ray_init_kwargs(ours.cpu))
        return args

    saved_argv = sys.argv
    sys.argv = [CLI_MODULE, *rest]
    try:
        with _patched_hierarchize(on_args):
            runpy.run_module(CLI_MODULE, run_name="__main__", alter_sys=True)
    except _DryRun as done:
        actor = done.parsed.actor
        print(
            json.dumps(
                {
                    "policy_loss_type": actor.policy_loss_type,
                    "loss_agg_mode": actor.loss_agg_mode,
                    "asympo_eps": getattr(actor, "asympo_eps", None),
                    "spo_neg_scale": getattr(actor, "spo_neg_scale", None),
                    "asympo_allow_unbalanced_agg": getattr(actor, "asympo_allow_unbalanced_agg", None),
                    "openrlhf_argv": rest,
                }
            )
        )
    finally:
        sys.argv = saved_argv
    return 0


def parse_args(argv: list[str]):
    """OpenRLHF's hierarchized ``args`` for ``argv`` as ``asympo-openrlhf`` resolves and checks them (no Ray).

    For tests and benchmarks that build OpenRLHF's trainer in-process. Of OpenRLHF's own post-parse defaults
    only ``actor.eps_clip_low_high`` (from ``actor.eps_clip``) is applied.
    """
    ours, rest = split_argv(argv)
    check_openrlhf()
    captured = {}

    def on_args(args):
        apply_plugin_settings(args, ours)
        captured["args"] = args
        raise _DryRun(args)

    saved_argv = sys.argv
    sys.argv = [CLI_MODULE, *rest]
    try:
        with _patched_hierarchize(on_args):
            runpy.run_module(CLI_MODULE, run_name="__main__", alter_sys=True)
    except _DryRun:
        pass
    finally:
        sys.argv = saved_argv
    args = captured["args"]
    if args.actor.eps_clip_low_high is None:
        args.actor.eps_clip_low_high = (args.actor.eps_clip, args.actor.eps_clip)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (LauncherError, fields.LossConfigError, OpenRLHFVersionError, PatchError) as e:
        sys.stderr.write(f"asympo-openrlhf: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
