"""One study run: ``asympo-train`` plus a delayed weight sync, and the resolved config saved.

    python -m asympo_plugin.study.train [--sync-delay N] [--save-config PATH] <asympo-train args>

Why a wrapper and not plain ``asympo-train``: the CPU hook (``asympo_plugin.verl.cpu.configure``) sets
the one-step-off checkpoint engine to ``cpu`` after the command line is composed, so a different
engine cannot be chosen by an override. This runs exactly ``asympo-train``'s steps
(:func:`asympo_plugin.verl.launcher.build_config`, then :func:`asympo_plugin.verl.launcher.run`), and in
between selects the ``cpu_delayed`` engine (``delayed_sync.py``) when ``--sync-delay`` > 0 and
writes the resolved config, from which the study reads what the run really did (pipeline, whether
the rollout shipped log-probs, the loss).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf


def main(argv: list[str] | None = None) -> int:
    from ..verl import launcher
    from ..core.fields import LossConfigError

    parser = argparse.ArgumentParser(prog="asympo-study-train", add_help=True)
    parser.add_argument("--sync-delay", type=int, default=0, help="deliver weights this many syncs late (one-step-off)")
    parser.add_argument("--save-config", type=Path, help="write the resolved config here (YAML)")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg, pipeline, _ = launcher.build_config(rest)
        launcher.check_files(cfg)
    except (launcher.LauncherError, LossConfigError) as e:
        print(f"asympo-study-train: error: {e}", file=sys.stderr)
        return 2
    if args.sync_delay > 0:
        from . import delayed_sync

        delayed_sync.configure(cfg, args.sync_delay)
    if args.save_config:
        args.save_config.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, args.save_config)
    print(
        f"asympo-study-train: loss={cfg.actor_rollout_ref.actor.policy_loss.loss_mode} "
        f"pipeline={pipeline.entry_module} sync_delay={args.sync_delay}",
        file=sys.stderr,
    )
    launcher.run(cfg, pipeline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
