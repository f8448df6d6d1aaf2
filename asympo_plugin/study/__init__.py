"""The head-to-head study (``asympo-compare``): ASymPO and SPO against current-policy and PPO-clip baselines.

The claim it tests: with stale responses and only current-policy probabilities, a naive
current-policy loss and GPG collapse, while ASymPO and SPO train stably and stay competitive with
GRPO. Measured in verl's real trainers on the built-in CPU task, or read from your own verl logs.

* ``matrix.py``: methods, staleness levels, seeds, presets (what runs);
* ``delayed_sync.py``: the ``cpu_delayed`` weight sync that makes staleness 2 and 4 on CPU;
* ``train.py``: one run (``asympo-train`` plus the delayed sync; saves the resolved config);
* ``runner.py``: the resumable sweep (one directory and one completion marker per run);
* ``analysis.py``: loading verl JSONL/TensorBoard logs, the collapse criterion, per-run numbers;
* ``report.py``: markdown tables, PNG plots, timing ratios;
* ``cli.py``: ``asympo-compare run|compare``.
"""
