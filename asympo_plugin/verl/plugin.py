"""The ``verl.plugins`` entry point: the one place that registers the losses and installs the patches.

verl imports this module on ``import verl`` in every process (Ray workers included). It

1. checks verl's loss API (``compat.check_verl``) and registers ``asympo`` and ``spo``
   (``losses.register``; verl's own losses stay verl's functions unless ``ASYMPO_BUILTIN_DIAGNOSTICS=1``);
2. on verl 0.9.1, installs the behavior-free patches (``behavior_free.PATCHES``; each one changes nothing
   for a loss that reads behavior log-probs); on any other verl, installs none;
3. only in a CPU run (``ASYMPO_CPU=1``, set by ``trainer.device=cpu``), activates the CPU backend.

verl swallows errors raised while loading a plugin, so a broken install would surface only later as
"Unsupported loss mode: asympo"; this module prints them first, on stderr (which Ray forwards from every
worker), and ``asympo-train`` re-checks the registry.
"""

from __future__ import annotations

import os
import sys
import traceback


def load() -> None:
    from . import behavior_free, compat, losses

    compat.check_verl()
    losses.register()
    if compat.is_supported():
        behavior_free.apply()
    if os.environ.get("ASYMPO_CPU") == "1":  # trainer.device=cpu only: see asympo_plugin/verl/cpu
        from . import cpu

        cpu.activate()


try:
    load()
except Exception:
    sys.stderr.write("asympo-plugin: FAILED to register the asympo/spo losses into verl:\n" + traceback.format_exc())
    raise
