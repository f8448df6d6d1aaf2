"""``asympo-train``: verl's trainer with ``algorithm.loss=<name>``.

verl has no ``algorithm.loss`` key; its policy loss is ``actor_rollout_ref.actor.policy_loss.loss_mode``
and ASymPO/SPO need more than that. This launcher takes every verl Hydra override plus
``algorithm.loss`` (on the command line or in a recipe's YAML), turns it into the actor's loss
settings, checks everything on the driver before Ray starts, and runs verl's own entry point::

    asympo-train [--dry-run] [--pipeline auto|sync|one-step-off|fully-async]
                 [--config-path DIR] [--config-name NAME] [--cfg job] [overrides ...]

Options and overrides may come in any order, and Hydra's own flags work as they do for
``python -m <verl entry>``: a verl example script runs with only its module swapped for
``asympo-train`` (``--config-path=config`` resolves against the verl entry module's folder).

What ``algorithm.loss=<name>`` sets:

* ``actor_rollout_ref.actor.policy_loss.loss_mode=<name>`` (any loss in verl's registry);
* ``actor_rollout_ref.actor.policy_loss._target_`` = the plugin's config class, which adds the fields
  ``asympo_eps``, ``spo_neg_scale``, ``asympo_allow_unbalanced_agg`` (settable as plain overrides);
* for ``asympo``, ``actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean`` unless you set one.

``--dry-run`` composes, translates and validates the whole config with verl's ``validate_config``
and prints it as YAML, without starting Ray.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import functools
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf, open_dict

from ..core import fields as core_fields
from . import settings
from .losses import assert_registered

ACTOR = settings.ACTOR
POLICY_LOSS = settings.POLICY_LOSS


class LauncherError(ValueError):
    """A bad command line or config; the message says how to fix it."""


@dataclass(frozen=True)
class Pipeline:
    entry_module: str  # verl module whose hydra ``main`` runs the job
    config_module: str  # dotted path of the folder holding its default config
    config_name: str


PIPELINES = {
    "sync": Pipeline("verl.trainer.main_ppo", "verl.trainer.config", "ppo_trainer"),
    "one-step-off": Pipeline(
        "verl.experimental.one_step_off_policy.main_ppo",
        "verl.experimental.one_step_off_policy.config",
        "one_step_off_ppo_trainer",
    ),
    "fully-async": Pipeline(
        "verl.experimental.fully_async_policy.fully_async_main",
        "verl.experimental.fully_async_policy.config",
        "fully_async_ppo_trainer",
    ),
}


@functools.cache
def config_dir(pipeline: Pipeline) -> str:
    """The folder of a pipeline's verl configs, usable as a parent in a recipe's ``defaults:``.

    verl's async pipeline YAMLs set ``hydra.searchpath`` (to a path relative to a verl checkout),
    and Hydra refuses that in any config that is not the primary one, so a recipe could not extend
    them. We compose from copies without that ``hydra:`` block (made per process, in a temp dir);
    every verl config folder is on the search path anyway (see :func:`compose`).
    """
    import verl

    folder = os.path.join(os.path.dirname(verl.__file__), *pipeline.config_module.split(".")[1:])
    if pipeline.config_module == "verl.trainer.config":
        return folder
    copy = tempfile.mkdtemp(prefix=f"asympo-{pipeline.config_name}-")
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for name in os.listdir(folder):
        if name.endswith(".yaml"):
            content = OmegaConf.load(os.path.join(folder, name))
            content.pop("hydra", None)
            OmegaConf.save(content, os.path.join(copy, name))
    return copy


HYDRA_FLAGS_REFUSED = {
    "--multirun": "a sweep runs one job per override combination; run asympo-train once per setting instead",
    "-m": "a sweep runs one job per override combination; run asympo-train once per setting instead",
    "--run": "asympo-train always runs one job; drop --run",
    "-r": "asympo-train always runs one job; drop -r",
    "--experimental-rerun": "rerun from a pickled config is not supported; pass the overrides again",
    "--shell-completion": "shell completion is not supported; drop --shell-completion",
    "-sc": "shell completion is not supported; drop -sc",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2; keep the code, say what to do
        raise LauncherError(f"{message} (see asympo-train --help)")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line the way verl's Hydra entry points do: options and overrides in any order.

    Hydra's own flags work: ``--config-path``/``-cp``, ``--config-name``/``-cn`` (with or without ``.yaml``),
    ``--config-dir``/``-cd``, ``--cfg job|hydra|all``/``-c`` (print, run nothing), ``--resolve``,
    ``--package``/``-p``, ``--info`` (refused with the alternative), ``hydra.*`` overrides.
    """
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in HYDRA_FLAGS_REFUSED:
            raise LauncherError(f"{flag} is not supported: {HYDRA_FLAGS_REFUSED[flag]}")
    parser = _Parser(
        prog="asympo-train",
        description="Run verl's trainer with algorithm.loss=<name> (asympo, spo, or any loss in verl's registry).",
        epilog="Example: asympo-train --pipeline one-step-off algorithm.loss=asympo data.train_files=... "
        "actor_rollout_ref.model.path=...  (any verl script works with its module swapped for asympo-train)",
    )
    parser.add_argument("--dry-run", action="store_true", help="compose, translate, validate, print YAML; no Ray")
    parser.add_argument(
        "--pipeline",
        choices=["auto", *PIPELINES],
        default="auto",
        help="verl entry point; auto: from the config (async_training -> fully-async, rollout -> one-step-off)",
    )
    parser.add_argument(
        "--config-path",
        "-cp",
        help="config folder: absolute, pkg://module, or relative to the pipeline's verl entry module (as Hydra "
        "resolves it for `python -m <verl entry>`), else to the working directory",
    )
    parser.add_argument("--config-name", "-cn", help="config to compose, with or without .yaml")
    parser.add_argument("--config-dir", "-cd", action="append", default=[], help="extra config search folder")
    parser.add_argument("--cfg", "-c", choices=["job", "hydra", "all"], help="print the config (as Hydra does); no Ray")
    parser.add_argument("--resolve", action="store_true", help="with --cfg: resolve interpolations")
    parser.add_argument("--package", "-p", help="with --cfg: print only this config node (dotted path)")
    parser.add_argument("--info", nargs="?", const="all", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. algorithm.loss=asympo trainer.nnodes=2")
    args = parser.parse_intermixed_args(argv)
    if args.info is not None:
        raise LauncherError("--info is not supported; use --cfg job (the composed config) or --dry-run")
    if args.config_name and args.config_name.endswith(".yaml"):
        args.config_name = args.config_name[: -len(".yaml")]
    return args


def entry_dir(pipeline: Pipeline) -> str:
    """The folder of a pipeline's verl entry module (what Hydra resolves a relative --config-path against)."""
    spec = importlib.util.find_spec(pipeline.entry_module)
    return os.path.dirname(spec.origin)


def resolve_config_path(path: str, pipeline: str) -> str:
    """``--config-path`` as Hydra resolves it for ``python -m <verl entry> --config-path=PATH``.

    Absolute: as is. ``pkg://a.b``: that package's folder. Relative: against the entry module's folder
    (verl's example scripts pass ``--config-path=config``); a folder that does not exist there is taken
    against the working directory (a user's own recipe folder). A verl config folder is replaced by its
    search-path-safe copy (:func:`config_dir`).
    """
    if path.startswith("pkg://"):
        spec = importlib.util.find_spec(path[len("pkg://") :].replace("/", "."))
        if spec is None or not spec.submodule_search_locations:
            raise LauncherError(f"--config-path={path}: no such package")
        folder = list(spec.submodule_search_locations)[0]
    elif path.startswith("file://"):
        folder = path[len("file://") :]
    elif os.path.isabs(path):
        folder = path
    else:
        order = [PIPELINES[pipeline]] if pipeline in PIPELINES else []
        order += [p for p in PIPELINES.values() if p not in order]
        candidates = [os.path.join(entry_dir(p), path) for p in order]
        folder = next((c for c in candidates if os.path.isdir(c)), os.path.abspath(path))
    folder = os.path.realpath(folder)
    for p in PIPELINES.values():
        import verl

        verl_folder = os.path.join(os.path.dirname(verl.__file__), *p.config_module.split(".")[1:])
        if folder == os.path.realpath(verl_folder):
            return config_dir(p)
    if not os.path.isdir(folder):
        raise LauncherError(
            f"--config-path={path}: no such folder (looked in the verl entry module's folder and in {os.getcwd()}); "
            "give an absolute path or one relative to the working directory"
        )
    return folder


def _split_overrides(overrides: list[str]) -> tuple[list[str], str | None, set[str]]:
    """Pull ``algorithm.loss`` out of the overrides and let the plugin's loss fields be set without ``+``.

    Returns ``(hydra_overrides, loss_or_None, keys_set_on_the_command_line)``.
    """
    hydra_overrides, loss, keys = [], None, set()
    plugin_fields = {f"{POLICY_LOSS}.{f}" for f in core_fields.LOSS_FIELDS}
    for item in overrides:
        if "=" not in item:
            raise LauncherError(f"'{item}' is not an override of the form key=value")
        key, value = item.split("=", 1)
        bare = key.lstrip("+~")
        keys.add(bare)
        if bare == "algorithm.loss":
            loss = value
        elif bare in plugin_fields:
            hydra_overrides.append(f"++{bare}={value}")
        else:
            hydra_overrides.append(item)
    return hydra_overrides, loss, keys


def compose(
    config_path: str,
    config_name: str,
    overrides: list[str],
    extra_dirs: tuple[str, ...] = (),
    return_hydra_config: bool = False,
) -> DictConfig:
    """Compose a config the way ``python -m <verl entry> --config-path --config-name overrides`` would.

    Every verl config folder is on the search path, so a recipe's ``defaults:`` can name any of
    them (with a pip-installed verl the YAMLs' own ``file://verl/trainer/config`` does not resolve).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    dirs = [os.path.abspath(d) for d in extra_dirs] + [config_dir(p) for p in PIPELINES.values()]
    search_path = ",".join(f"file://{d}" for d in dirs)
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra.searchpath")]
    overrides.append(f"hydra.searchpath=[{search_path}]")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_path), version_base=None):
            return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    except Exception as e:  # hydra's errors are precise; keep them, add where they came from
        raise LauncherError(f"could not compose config '{config_name}' from {config_path}: {e}") from e


def detect_pipeline(cfg: DictConfig) -> str:
    if "async_training" in cfg:
        return "fully-async"
    if "rollout" in cfg:
        return "one-step-off"
    return "sync"


def validate(cfg: DictConfig, pipeline: str) -> None:
    """verl's own driver-side validation (the sync entry point runs it too; the async ones only in Ray)."""
    from hydra.errors import InstantiationException
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    if pipeline != "sync":  # what verl's async mains do before validating
        cfg.actor_rollout_ref.rollout.nnodes = cfg.rollout.nnodes
        cfg.actor_rollout_ref.rollout.n_gpus_per_node = cfg.rollout.n_gpus_per_node
    checked = cfg
    if pipeline == "fully-async" and not cfg.data.train_batch_size:
        # verl's fully-async main never runs validate_config: its data.train_batch_size=0 (the rollouter
        # takes prompts one at a time) would fail it. Check what one trainer step consumes instead.
        checked = copy.deepcopy(cfg)
        checked.data.train_batch_size = cfg.actor_rollout_ref.actor.ppo_mini_batch_size * cfg.async_training.get(
            "require_batches", 1
        )
    try:  # verl prints its verdict to stdout; keep stdout for the --dry-run YAML
        with contextlib.redirect_stdout(sys.stderr):
            validate_config(
                config=checked, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
            )
    except InstantiationException as e:  # hydra wraps the dataclass's own message; unwrap it
        raise LauncherError(f"verl rejected the config: {e.__cause__ or e}") from e
    except (AssertionError, ValueError, TypeError) as e:
        raise LauncherError(f"verl rejected the config: {e}") from e


def build_config(argv: list[str]) -> tuple[DictConfig, Pipeline, argparse.Namespace]:
    """Compose, translate and validate; return ``(cfg, pipeline, args)``. Starts no Ray.

    ``hydra.*`` overrides are composed too (Hydra checks them); their values are in ``args.hydra``.
    """
    assert_registered()
    args = _parse_args(argv)
    overrides, loss, cli_keys = _split_overrides(args.overrides)
    base = PIPELINES["sync" if args.pipeline == "auto" else args.pipeline]
    config_name = args.config_name or base.config_name
    if args.config_path:
        folder = resolve_config_path(args.config_path, args.pipeline)
    else:
        folder = next(
            (d for d in map(config_dir, PIPELINES.values()) if os.path.exists(os.path.join(d, f"{config_name}.yaml"))),
            config_dir(base),
        )
    full = compose(folder, config_name, overrides, tuple(args.config_dir), return_hydra_config=True)
    with open_dict(full):
        args.hydra = full.pop("hydra")
    cfg = full
    name = detect_pipeline(cfg) if args.pipeline == "auto" else args.pipeline
    is_users = args.config_path is not None and folder not in {config_dir(p) for p in PIPELINES.values()}
    explicit = cli_keys | user_config_keys(folder, config_name, is_users)
    loss = settings.apply(cfg, loss, explicit, name)
    preflight(loss)
    validate(cfg, name)
    return cfg, PIPELINES[name], args


def user_config_keys(folder: str, config_name: str, is_users: bool) -> set[str]:
    """Keys the user's own config file sets (explicit choices, like command-line overrides)."""
    if not is_users:
        return set()
    path = os.path.join(folder, config_name if config_name.endswith(".yaml") else f"{config_name}.yaml")
    return settings.flatten_keys(OmegaConf.load(path)) if os.path.exists(path) else set()


def preflight(loss: str) -> None:
    """Before Ray starts: a plugin loss or a behavior-free pipeline needs the verl the patches were written for."""
    from .. import patching
    from . import behavior_free, compat
    from .losses import needs_behavior_log_probs

    if loss in ("asympo", "spo") or not needs_behavior_log_probs(loss):
        what = f"algorithm.loss={loss} (a behavior-free pipeline)"
        try:
            compat.require_supported(what)
            patching.preflight(behavior_free.PATCHES)
        except (compat.VerlIncompatibleError, patching.PatchError) as e:
            raise LauncherError(str(e)) from e


def run(cfg: DictConfig, pipeline: Pipeline) -> None:
    """Run verl's own hydra ``main`` body on the composed config."""
    main_fn = importlib.import_module(pipeline.entry_module).main
    getattr(main_fn, "__wrapped__", main_fn)(cfg)


def print_cfg(cfg: DictConfig, args: argparse.Namespace) -> None:
    """``--cfg job|hydra|all [--package P] [--resolve]``: what Hydra would print, after the loss translation."""
    if args.cfg == "job":
        node = cfg
    else:
        node = OmegaConf.create({"hydra": args.hydra} if args.cfg == "hydra" else {"hydra": args.hydra, **cfg})
    if args.package:
        node = OmegaConf.select(node, args.package)
        if node is None:
            raise LauncherError(f"--package={args.package}: no such node in the config")
    try:
        print(OmegaConf.to_yaml(node, resolve=args.resolve))
    except Exception:  # noqa: BLE001 - some interpolations (hydra's ${now:}) resolve only in a hydra run
        print(OmegaConf.to_yaml(node))


def _is_local(path) -> bool:
    return isinstance(path, str) and "://" not in path and (os.path.isabs(path) or path.startswith(("./", "../", "~")))


def check_files(cfg: DictConfig) -> None:
    """Before Ray starts: the model, data and reward-function files a run reads exist (remote URLs and hub ids pass)."""
    model = OmegaConf.select(cfg, "actor_rollout_ref.model.path")
    if _is_local(model) and not os.path.exists(os.path.expanduser(model)):
        raise LauncherError(
            f"actor_rollout_ref.model.path={model}: no such folder. Point it at a local model folder or a "
            "Hugging Face model id (e.g. Qwen/Qwen2.5-0.5B-Instruct)."
        )
    for key in ("data.train_files", "data.val_files"):
        value = OmegaConf.select(cfg, key)
        files = list(value) if OmegaConf.is_list(value) or isinstance(value, list | tuple) else [value]
        for f in files:
            if isinstance(f, str) and f and "://" not in f and not os.path.exists(os.path.expanduser(f)):
                raise LauncherError(f"{key}: {f} does not exist. Give the path of a parquet file (verl's data format).")
    reward = OmegaConf.select(cfg, "reward.custom_reward_function.path") or OmegaConf.select(
        cfg, "custom_reward_function.path"
    )
    if isinstance(reward, str) and reward and not os.path.exists(os.path.expanduser(reward)):
        raise LauncherError(
            f"reward.custom_reward_function.path={reward} does not exist. Give the Python file that defines the "
            "reward function (and reward.custom_reward_function.name), or drop the key for verl's default scorer."
        )


def hydra_job_setup(cfg: DictConfig, args: argparse.Namespace) -> None:
    """What Hydra does around a job that matters to a run: ``hydra.run.dir`` gets ``.hydra/config.yaml``
    and ``overrides.yaml`` (only when set explicitly; verl's jobs write their own outputs), and
    ``hydra.job.chdir=true`` changes into it."""
    given = any(o.lstrip("+~").startswith("hydra.run.dir=") for o in args.overrides)
    chdir = bool(OmegaConf.select(args.hydra, "job.chdir", default=False))
    if not (given or chdir):
        return
    run_dir = OmegaConf.select(args.hydra, "run.dir")
    try:
        run_dir = str(OmegaConf.create({"d": run_dir, "hydra": args.hydra}).d) if given else run_dir
    except Exception:  # noqa: BLE001
        pass
    run_dir = os.path.abspath(str(run_dir))
    os.makedirs(os.path.join(run_dir, ".hydra"), exist_ok=True)
    OmegaConf.save(cfg, os.path.join(run_dir, ".hydra", "config.yaml"))
    OmegaConf.save(OmegaConf.create(list(args.overrides)), os.path.join(run_dir, ".hydra", "overrides.yaml"))
    if chdir:
        os.chdir(run_dir)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg, pipeline, args = build_config(argv)
        if args.cfg:
            print_cfg(cfg, args)
            return 0
        if not args.dry_run:
            check_files(cfg)
    except (LauncherError, core_fields.LossConfigError) as e:
        print(f"asympo-train: error: {e}", file=sys.stderr)
        return 2
    loss = cfg.actor_rollout_ref.actor.policy_loss.loss_mode
    print(
        f"asympo-train: loss={loss} agg={cfg.actor_rollout_ref.actor.loss_agg_mode} pipeline={pipeline.entry_module}",
        file=sys.stderr,
    )
    if args.dry_run:
        try:
            print(OmegaConf.to_yaml(cfg, resolve=True))
        except Exception:  # noqa: BLE001 - some interpolations resolve only at run time
            print(OmegaConf.to_yaml(cfg))
        return 0
    hydra_job_setup(cfg, args)
    run(cfg, pipeline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
