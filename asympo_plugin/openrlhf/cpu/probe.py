"""CPU/test support only: what the end-to-end test measures, written to ``$ASYMPO_OPENRLHF_PROBE_DIR``.

* ``dispatch-<pid>.jsonl``: one line per model forward that experience making dispatched (the actor class
  of the group: ``PolicyModelActor`` is the old-log-prob forward), from a wrapper around OpenRLHF's own
  ``RemoteExperienceMaker._dispatch_forward`` (``PROBE_PATCH``, installed only with the probe dir set).
* ``sent-<pid>.jsonl`` / ``loaded-<pid>.jsonl``: per weight sync, a fingerprint (sum and sum of squares in
  float64 over every parameter; invariant to vLLM's fusing of q/k/v and gate/up) of the weights the trainer
  sent and of vLLM's model after loading them; for vLLM also ``packed_max_rel``: over every linear layer
  that computes from a packed copy (``layer.cpu_linear``, vLLM's CPU GEMM), the largest relative difference
  between its output and ``F.linear`` with the layer's loaded weight on a fixed random input (a stale
  packed copy computes with the old weights).
"""

from __future__ import annotations

import json
import os
import time

from ...patching import Patch
from ..compat import DISTRIBUTION, INSTALL_HINT, VERSIONS
from . import PROBE_ENV


def _write(kind: str, record: dict) -> None:
    directory = os.environ.get(PROBE_ENV)
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{kind}-{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.time(), **record}) + "\n")


def read(directory, kind: str) -> list[dict]:
    """Every ``kind`` record the processes of a run wrote under ``directory``, in time order."""
    from pathlib import Path

    rows = []
    for path in sorted(Path(directory).glob(f"{kind}-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["time"])


def fingerprint(tensors) -> dict[str, float]:
    import torch

    total = squares = 0.0
    with torch.no_grad():
        for t in tensors:
            t = t.detach().double()
            total += float(t.sum())
            squares += float((t * t).sum())
    return {"sum": total, "sumsq": squares}


def record_sent_weights(named_params) -> None:
    _write("sent", fingerprint(p for _, p in named_params))


def packed_max_rel(model) -> tuple[float, int]:
    """``(largest relative |packed GEMM - F.linear(loaded weight)|, number of layers checked)`` over vLLM's CPU
    linear layers."""
    import torch
    import torch.nn.functional as F

    worst, layers = 0.0, 0
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            compute, weight = getattr(module, "cpu_linear", None), getattr(module, "weight", None)
            if compute is None or weight is None or weight.ndim != 2 or weight.numel() == 0:
                continue
            x = torch.randn(8, weight.shape[1], generator=g).to(weight.dtype)
            bias = getattr(module, "bias", None)
            want = F.linear(x, weight, bias).double()
            got = compute(x, weight, bias).double()
            worst = max(worst, float((got - want).abs().max() / want.abs().max().clamp_min(1e-12)))
            layers += 1
    return worst, layers


def record_loaded_weights(model) -> None:
    worst, layers = packed_max_rel(model)
    _write("loaded", {**fingerprint(model.parameters()), "packed_max_rel": worst, "packed_layers": layers})


def _actor_name(group) -> str:
    cls = group.ray_actor_type
    meta = getattr(cls, "__ray_metadata__", None)
    return getattr(meta, "class_name", None) or getattr(cls, "__name__", repr(cls))


def _recording_dispatch(original):
    def _dispatch_forward(self, group, sync_condition, **kwargs):
        _write("dispatch", {"actor": _actor_name(group), "n_batches": len(kwargs.get("sequences", []))})
        return original(self, group, sync_condition, **kwargs)

    return _dispatch_forward


PROBE_PATCH = Patch(
    name="openrlhf_cpu_probe_dispatch_forward",
    why="Test instrumentation: record which model groups experience making runs a forward on.",
    module="openrlhf.trainer.ppo_utils.experience_maker",
    attr="RemoteExperienceMaker._dispatch_forward",
    source_sha256="4339cdd888efc46b8ba0fb5583078172f080740031cf2e6b3ae882efd53b3a59",
    make_replacement=_recording_dispatch,
    distribution=DISTRIBUTION,
    versions=VERSIONS,
    install_hint=INSTALL_HINT,
)

PATCHES = (PROBE_PATCH,)
