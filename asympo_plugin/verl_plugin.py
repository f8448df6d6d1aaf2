"""Entry point of verl's ``verl.plugins`` group: ``import verl`` imports this module in every process.

verl catches and hides (at debug level) any error raised while loading a plugin, so a broken
install would only show up later as "Unsupported loss mode: asympo". We print the error to stderr
first, where Ray forwards worker output to the driver, and ``asympo-train`` re-checks the registry.
"""

import sys
import traceback

try:
    import asympo_plugin  # noqa: F401  (registers the losses)
except Exception:
    sys.stderr.write(
        "asympo-plugin: FAILED to register the asympo/spo losses into verl:\n" + traceback.format_exc()
    )
    raise
