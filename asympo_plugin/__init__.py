"""asympo-plugin: ASymPO and SPO, behavior-free policy losses for verl.

Importing the package registers the losses ``asympo`` and ``spo`` in verl's policy-loss registry.
verl imports it in every process through the ``verl.plugins`` entry point; the loss config class
(``asympo_plugin.config.AsympoPolicyLossConfig``) imports it again wherever verl builds the actor config.

Where to look: ``losses.py`` (the math), ``diagnostics.py`` (scale metrics), ``config.py`` (fields,
defaults, checks), ``registry.py`` (verl glue), ``compat.py`` (supported verl), ``launcher.py``
(``asympo-train`` and ``algorithm.loss``), ``patching.py`` (how verl is changed, when it must be).
"""

import sys
import traceback

from .registry import needs_behavior_log_probs, register

__version__ = "0.1.0"

try:
    VERL_VERSION = register()
except Exception:
    # verl catches and hides (at debug level) errors raised while loading a plugin, so a broken
    # install would surface only later as "Unsupported loss mode: asympo". Say it first, on stderr,
    # which Ray forwards from every worker to the driver; asympo-train also re-checks the registry.
    sys.stderr.write("asympo-plugin: FAILED to register the asympo/spo losses into verl:\n" + traceback.format_exc())
    raise

__import__(f"{__name__}.behavior_free", fromlist=["apply"]).apply()  # behavior-free pipelines in verl

if __import__("os").environ.get("ASYMPO_CPU") == "1":  # trainer.device=cpu only: see asympo_plugin/cpu
    from . import cpu  # noqa: F401

__all__ = ["VERL_VERSION", "__version__", "needs_behavior_log_probs", "register"]
