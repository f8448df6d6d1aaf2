"""asympo-plugin: ASymPO and SPO, behavior-free policy losses for verl.

Importing the package registers the losses ``asympo`` and ``spo`` in verl's policy-loss registry.
verl imports it in every process through the ``verl.plugins`` entry point; the loss config class
(``asympo_plugin.config.AsympoPolicyLossConfig``) imports it again wherever verl builds the actor config.

Where to look: ``losses.py`` (the math), ``diagnostics.py`` (scale metrics), ``config.py`` (fields,
defaults, checks), ``registry.py`` (verl glue), ``compat.py`` (supported verl), ``launcher.py``
(``asympo-train`` and ``algorithm.loss``).
"""

from .registry import needs_behavior_log_probs, register

__version__ = "0.1.0"
VERL_VERSION = register()
__import__(f"{__name__}.behavior_free", fromlist=["apply"]).apply()  # behavior-free pipelines in verl

__all__ = ["VERL_VERSION", "__version__", "needs_behavior_log_probs", "register"]
