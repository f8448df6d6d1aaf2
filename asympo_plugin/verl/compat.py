"""Which verl this plugin supports, and the check that refuses any other loss API.

The plugin registers into verl's policy-loss registry and reads verl's loss config. Both are
internal APIs that change between verl releases, so before registering we check the exact
shapes we rely on and refuse, with a message that says what to do, when they differ.

On a verl other than 0.9.1 whose loss API still matches, the losses are registered with a warning,
but the behavior-free patches are not applied (they are written against 0.9.1's source): stock verl
runs are unaffected, and ``asympo-train`` refuses a plugin loss before Ray starts (:func:`require_supported`).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

from packaging.specifiers import SpecifierSet
from packaging.version import Version

# The verl this plugin was written and tested against. The loss API check below is what decides
# registration; the behavior-free and CPU patches additionally check verl's source hash and refuse
# any other release, so a training run needs exactly this one. Keep in sync with setup.cfg.
SUPPORTED_VERL = SpecifierSet("==0.9.1")

# The keyword arguments verl's ppo_loss passes to every registered policy loss (verl 0.9.1).
POLICY_LOSS_PARAMS = (
    "old_log_prob",
    "log_prob",
    "advantages",
    "response_mask",
    "loss_agg_mode",
    "config",
    "rollout_is_weights",
)
# What ppo_loss puts into config.global_batch_info and we forward to agg_loss.
AGG_LOSS_PARAMS = ("dp_size", "batch_num_tokens", "global_batch_size", "loss_scale_factor")


class VerlIncompatibleError(RuntimeError):
    """The installed verl does not have the loss API this plugin was written for."""


def _fail(what: str, version: str) -> VerlIncompatibleError:
    return VerlIncompatibleError(
        f"asympo-plugin cannot register into verl {version}: {what}. "
        f"This plugin supports verl {SUPPORTED_VERL} (install it with: pip install 'verl[verl-core]==0.9.1'), "
        "or upgrade asympo-plugin to a release that supports your verl."
    )


def check_verl() -> str:
    """Check the installed verl's loss API; return its version. Raises VerlIncompatibleError."""
    import verl
    from verl.trainer.ppo import core_algos
    from verl.workers.config import PolicyLossConfig

    version = getattr(verl, "__version__", "unknown")
    for name in ("register_policy_loss", "get_policy_loss_fn", "POLICY_LOSS_REGISTRY", "agg_loss"):
        if not hasattr(core_algos, name):
            raise _fail(f"verl.trainer.ppo.core_algos.{name} is missing", version)
    reference = inspect.unwrap(core_algos.compute_policy_loss_vanilla)
    params = tuple(inspect.signature(reference).parameters)
    if params != POLICY_LOSS_PARAMS:
        raise _fail(f"policy losses take {params}, expected {POLICY_LOSS_PARAMS}", version)
    agg_params = set(inspect.signature(core_algos.agg_loss).parameters)
    if not set(AGG_LOSS_PARAMS) <= agg_params:
        raise _fail(f"agg_loss lacks {sorted(set(AGG_LOSS_PARAMS) - agg_params)}", version)
    if not dataclasses.is_dataclass(PolicyLossConfig) or "loss_mode" not in {
        f.name for f in dataclasses.fields(PolicyLossConfig)
    }:
        raise _fail("verl.workers.config.PolicyLossConfig is not a dataclass with loss_mode", version)
    try:
        supported = Version(version) in SUPPORTED_VERL
    except Exception:  # noqa: BLE001 - an unparsable version is simply untested
        supported = False
    if not supported:
        warnings.warn(
            f"asympo-plugin was tested with verl {SUPPORTED_VERL}, found {version}; its loss API matches, so the "
            "losses are registered, but the behavior-free patches are not applied (they are written against "
            "0.9.1's source). Stock verl runs are unaffected; asympo-train refuses the plugin's losses on this verl.",
            stacklevel=2,
        )
    return version


def is_supported() -> bool:
    from ..patching import installed_version

    version = installed_version("verl")
    try:
        return version is not None and Version(version) in SUPPORTED_VERL
    except Exception:  # noqa: BLE001
        return False


def require_supported(what: str) -> None:
    """Raise :class:`VerlIncompatibleError` naming the verl to install unless this is verl 0.9.1."""
    if not is_supported():
        from ..patching import installed_version

        raise VerlIncompatibleError(
            f"{what} needs verl {SUPPORTED_VERL} (found {installed_version('verl')}): the plugin's behavior-free "
            "changes to verl are written against that release's source. Install it with: "
            "pip install 'verl[verl-core]==0.9.1' (stock verl losses run unchanged on any verl)."
        )
