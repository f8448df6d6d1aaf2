"""asympo-plugin: ASymPO and SPO, behavior-free policy losses for verl and OpenRLHF (arXiv 2606.03070).

Importing this package imports no framework and installs nothing. Where to look:

* ``core/``: the loss math, its diagnostics and settings, framework-free (torch only).
* ``verl/``: the verl adapter; its ``plugin.py`` is verl's ``verl.plugins`` entry point, the one place that
  registers the losses and patches verl. ``verl/cpu/``: verl's real trainers on CPU.
* ``openrlhf/``: the OpenRLHF adapter.
* ``patching.py``: the one guarded mechanism by which any framework is changed.
* ``task/``: the built-in CPU task and model; ``harness.py``: runs a CPU training job; ``demo.py``: ``make demo``;
  ``study/``: ``asympo-compare``, the head-to-head study.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
