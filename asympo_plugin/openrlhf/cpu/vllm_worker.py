"""CPU/test support only: vLLM's worker extension for the CPU weight sync (selected by ``shims.VLLM_WORKER_PATCH``).

vLLM builds this class inside its engine process from the ``worker_extension_cls`` name. The trainer
(``shims.BROADCAST_PATCH``) sends each parameter as ``(name, raw bytes)`` through OpenRLHF's own
``RolloutRayActor.update_weight``; here they become a tensor again and go into vLLM's ``load_weights``.
After the last one, vLLM's ``process_weights_after_loading`` repacks the CPU GEMM weights (as verl does after
its sync): vLLM's CPU linear layers compute from a packed copy (oneDNN), which ``load_weights`` alone leaves
stale; ``asympo_plugin.vllm_cpu`` keeps the weights loadable for that. Everything else is OpenRLHF's
``WorkerWrap``.
"""

from __future__ import annotations

import torch
from openrlhf.trainer.ray.vllm_worker_wrap import WorkerWrap


class CPUWorkerWrap(WorkerWrap):
    def init_process_group(self, *args, **kwargs):  # no sync group on CPU (shims.NO_SYNC_GROUP_PATCH)
        return None

    def update_weight(self, name, dtype, shape, empty_cache=False):
        if not isinstance(name, (tuple, list)):
            raise RuntimeError("CPU weight sync expects (name, bytes) from asympo_plugin.openrlhf.cpu.shims")
        name, payload = name
        assert dtype == self.model_config.dtype, f"mismatch dtype: src {dtype}, dst {self.model_config.dtype}"
        weight = torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(dtype).reshape(shape)
        model = self.model_runner.model
        model.load_weights(weights=[(name, weight)])
        if empty_cache:  # the last parameter of this sync
            from vllm.model_executor.model_loader.utils import process_weights_after_loading

            from . import probe

            process_weights_after_loading(model, self.model_config, torch.device("cpu"))
            probe.record_loaded_weights(model)
