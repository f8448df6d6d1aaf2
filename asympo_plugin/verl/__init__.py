"""The verl adapter: the plugin's losses, launcher and behavior-free pipeline inside verl 0.9.1.

Importing this package does nothing; ``plugin.py`` (verl's ``verl.plugins`` entry point) is the one
place that registers the losses and installs the patches.

* ``plugin.py``: the entry point (registration, patches, CPU backend activation).
* ``losses.py``: ``asympo``/``spo`` as verl policy losses around the core; ``needs_behavior_log_probs``.
* ``config.py``: verl's ``PolicyLossConfig`` with the plugin's fields.
* ``compat.py``: the supported verl and its loss-API check.
* ``settings.py``: the one place that turns ``algorithm.loss`` and the fields into verl's config, and sets
  the defaults that follow from the loss (behavior-free) and the device (CPU), never over an explicit choice.
* ``launcher.py``: ``asympo-train``, verl's own entry points with ``algorithm.loss``.
* ``behavior_free.py``: the guarded patches that skip the old-log-prob stage (``patches/*.diff``).
* ``cpu/``: verl's real trainers on a CPU-only machine (``trainer.device=cpu``); never loads on GPU.
* ``math_reward.py``, ``data_prep.py``: the recipes' math reward and data preparation.
"""
