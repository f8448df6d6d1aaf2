"""The framework-free core: the loss math, its diagnostics, its settings. Imports torch only.

* ``losses.py``: the per-token loss matrices of ASymPO, SPO and the naive loss (one screen).
* ``diagnostics.py``: the scale-imbalance metrics.
* ``fields.py``: the loss settings (``asympo_eps``, ``spo_neg_scale``, ...), their defaults and their one check each.
* ``policy_loss.py``: what both framework adapters call: guard the inputs, build the loss matrix, report
  the diagnostics; the adapter aggregates with its own framework's reducer.
* ``metrics.py``: every metric name the plugin logs.

Importing this package imports no framework and installs nothing.
"""
