"""CPU/test support only: the guarded patches that let OpenRLHF 0.11.2 train and sync weights without CUDA.

Loaded by ``cpu.activate`` (``ASYMPO_OPENRLHF_CPU=1``, refused where CUDA is available); a GPU run never
imports this module. Each patch names the OpenRLHF/DeepSpeed/torch line it replaces; the OpenRLHF diffs
are in ``patches/openrlhf_cpu_*.diff``.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet

from ...patching import Patch, edit_source
from ..compat import DISTRIBUTION, INSTALL_HINT, VERSIONS
from ..edits import method_edits

_OPENRLHF = dict(distribution=DISTRIBUTION, versions=VERSIONS, install_hint=INSTALL_HINT)
_TORCH = dict(distribution="torch", versions=SpecifierSet("==2.13.0"), install_hint="pip install torch==2.13.0")
_DEEPSPEED = dict(
    distribution="deepspeed", versions=SpecifierSet("==0.19.6"), install_hint="pip install deepspeed==0.19.6"
)
CPU_WORKER_EXTENSION = "asympo_plugin.openrlhf.cpu.vllm_worker.CPUWorkerWrap"


# ------------------------------------------------------------------------------------- torch.cuda calls


def _current_device_cpu(original):
    def current_device():
        return "cpu"

    return current_device


def _synchronize_noop(original):
    def synchronize(device=None):
        return None

    return synchronize


CURRENT_DEVICE_PATCH = Patch(
    name="cpu_torch_cuda_current_device",
    why=(
        "OpenRLHF places tensors on torch.cuda.current_device() throughout (ppo_actor.py:171,627, launcher.py:136,190, "
        "deepspeed.py:614, replay_buffer.py:104-165); on CPU that device is 'cpu'."
    ),
    module="torch.cuda",
    attr="current_device",
    source_sha256="6e9804168a5c7f8c0a4e16ce292ac415132e68d9479397c61dddda2329f05259",
    make_replacement=_current_device_cpu,
    **_TORCH,
)

SYNCHRONIZE_PATCH = Patch(
    name="cpu_torch_cuda_synchronize",
    why="OpenRLHF synchronizes CUDA after barriers (distributed_util.py:10, ppo_actor.py:605, launcher.py:65); CPU has nothing to wait for.",
    module="torch.cuda",
    attr="synchronize",
    source_sha256="7055e6143ffee8f141c9900a7b5dd69345e841a3e14c0be02af277f347232dcd",
    make_replacement=_synchronize_noop,
    **_TORCH,
)


# --------------------------------------------------------------------------------------- DeepSpeed setup

SETUP_DISTRIBUTED_EDITS = method_edits(
    [
        (
            """        if local_rank != -1:
            torch.cuda.set_device(local_rank)
""",
            """        if local_rank != -1:
            pass  # asympo-plugin CPU: no CUDA device to select
""",
        ),
        (
            """        self.ds_device_mesh = init_device_mesh(
            "cuda", (dp_size""",
            """        self.ds_device_mesh = init_device_mesh(
            "cpu", (dp_size""",
        ),
    ]
)

SETUP_DISTRIBUTED_PATCH = Patch(
    name="openrlhf_cpu_setup_distributed",
    why="DeepspeedStrategy.setup_distributed selects a CUDA device (deepspeed.py:97) and builds a 'cuda' device mesh (:105-107).",
    module="openrlhf.utils.deepspeed.deepspeed",
    attr="DeepspeedStrategy.setup_distributed",
    source_sha256="979d281389a0a57a9a9b3791b60c2402e28ef84d327bf9fb6bad0f7f8c03a5aa",
    make_replacement=lambda f: edit_source(f, SETUP_DISTRIBUTED_EDITS, "openrlhf_cpu_setup_distributed"),
    **_OPENRLHF,
)

TORCH_ADAM_EDITS = method_edits(
    [
        (
            """                "type": "AdamW",
                "params": {
""",
            """                "type": "AdamW",
                "params": {
                    "torch_adam": True,  # asympo-plugin CPU: torch's AdamW, not DeepSpeed's JIT-compiled FusedAdam
""",
        ),
    ]
)

TORCH_ADAM_PATCH = Patch(
    name="openrlhf_cpu_torch_adam",
    why=(
        "DeepSpeed's AdamW is FusedAdam, which on the CPU accelerator JIT-compiles a C++ op first (measured 358 s); "
        "DeepSpeed's own 'torch_adam' option selects torch.optim.AdamW instead."
    ),
    module="openrlhf.utils.deepspeed.deepspeed",
    attr="DeepspeedStrategy._ds_init_train_model",
    source_sha256="f9aa735186ab688bb8e7db288d57d166bdb4ef90e6842de8b7f74f0c4cbde8be",
    make_replacement=lambda f: edit_source(f, TORCH_ADAM_EDITS, "openrlhf_cpu_torch_adam"),
    **_OPENRLHF,
)


def _no_shm_op(original):
    def build_shm_op():
        return None

    return build_shm_op


NO_SHM_OP_PATCH = Patch(
    name="cpu_deepspeed_no_shm_op",
    why=(
        "DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce at init (deepspeed_shm_comm, measured 134 s), "
        "used only by inference all-reduce; without it DeepSpeed uses torch.distributed (gloo)."
    ),
    module="deepspeed.comm.torch",
    attr="build_shm_op",
    source_sha256="2bf3cff9e3d1f05863cf534d298028210a541824eb8b9832ca37877183d60395",
    make_replacement=_no_shm_op,
    **_DEEPSPEED,
)


def _replay_buffer_on_cpu(original):
    # Not recompiled: NaiveReplayBuffer.__init__ calls zero-argument super(). While it runs,
    # current_device() is 0 (torch.device("cuda:0") is only a name), then the device becomes the CPU.
    def __init__(self, *args, **kwargs):
        import torch

        current_device = torch.cuda.current_device
        torch.cuda.current_device = lambda: 0
        try:
            original(self, *args, **kwargs)
        finally:
            torch.cuda.current_device = current_device
        self.target_device = torch.device("cpu")

    return __init__


REPLAY_BUFFER_PATCH = Patch(
    name="openrlhf_cpu_replay_buffer_device",
    why="NaiveReplayBuffer builds f'cuda:{torch.cuda.current_device()}' (replay_buffer.py:40), 'cuda:cpu' on CPU.",
    module="openrlhf.trainer.ppo_utils.replay_buffer",
    attr="NaiveReplayBuffer.__init__",
    source_sha256="4b675d5bdab2b09fab4c31a7bf3779e7de318a1c3b538eacd1b6279e0fe44972",
    make_replacement=_replay_buffer_on_cpu,
    **_OPENRLHF,
)


# ----------------------------------------------------------------------------------- weight sync to vLLM


def _no_sync_group(original):
    def _init_vllm_sync_group(self, backend):
        self._model_update_group = None  # CPU: weights go through Ray (broadcast_to_vllm below)

    return _init_vllm_sync_group


def _broadcast_to_vllm_cpu(original):
    def broadcast_to_vllm(self):
        """Each parameter as bytes through ``engine.update_weight`` into vLLM's ``load_weights`` (rank 0)."""
        import ray
        import torch

        from . import probe

        if torch.distributed.get_rank() != 0:
            torch.distributed.barrier()
            return
        params = list(self.actor.model.module.named_parameters())
        for count, (name, param) in enumerate(params, start=1):
            data = param.data.detach().contiguous()
            payload = (name, data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
            refs = [
                engine.update_weight.remote(
                    payload, dtype=data.dtype, shape=tuple(data.shape), empty_cache=count == len(params)
                )
                for engine in self.vllm_engines
            ]
            ray.get(refs)
        probe.record_sent_weights(params)
        torch.distributed.barrier()

    return broadcast_to_vllm


NO_SYNC_GROUP_PATCH = Patch(
    name="openrlhf_cpu_no_vllm_sync_group",
    why=(
        "The weight-sync process group cannot be built on CPU: gloo's new group conflicts with the default group "
        "DeepSpeed owns. The CPU sync below needs none."
    ),
    module="openrlhf.trainer.ray.ppo_actor",
    attr="ActorPPOTrainer._init_vllm_sync_group",
    source_sha256="0cfdd56dc184d4216fd37a54813f3c37e12b23dc37589f4ce84331ce81fe8ac8",
    make_replacement=_no_sync_group,
    **_OPENRLHF,
)

BROADCAST_PATCH = Patch(
    name="openrlhf_cpu_broadcast_to_vllm",
    why=(
        "broadcast_to_vllm broadcasts each parameter over NCCL/CUDA IPC. On CPU each parameter goes as bytes through "
        "the engine's update_weight into cpu/vllm_worker.CPUWorkerWrap (collective_rpc msgpack-encodes tensors)."
    ),
    module="openrlhf.trainer.ray.ppo_actor",
    attr="ActorPPOTrainer.broadcast_to_vllm",
    source_sha256="9c92fd8bfa9217c67e7567e4d630d1c3ceba12bbb6adb731786bd58c96d4226c",
    make_replacement=_broadcast_to_vllm_cpu,
    **_OPENRLHF,
)

VLLM_WORKER_EDITS = [
    (
        """            "worker_extension_cls": "openrlhf.trainer.ray.vllm_worker_wrap.WorkerWrap",
""",
        f"""            "worker_extension_cls": "{CPU_WORKER_EXTENSION}",
""",
    ),
]

VLLM_WORKER_PATCH = Patch(
    name="openrlhf_cpu_vllm_worker",
    why=(
        "vLLM's engine process is not a Ray worker (no setup hook runs there), so the CPU weight receiver is selected "
        "through vLLM's own worker_extension_cls, which create_vllm_engines hard-codes."
    ),
    module="openrlhf.trainer.ray.vllm_engine",
    attr="create_vllm_engines",
    source_sha256="70331b59ea5bd152679b432799d57190b16c2d95286049cef4c7d3e9674e7856",
    make_replacement=lambda f: edit_source(f, VLLM_WORKER_EDITS, "openrlhf_cpu_vllm_worker"),
    also_bound_in=("openrlhf.trainer.ray",),
    **_OPENRLHF,
)

PATCHES = (
    CURRENT_DEVICE_PATCH,
    SYNCHRONIZE_PATCH,
    NO_SHM_OP_PATCH,
    SETUP_DISTRIBUTED_PATCH,
    TORCH_ADAM_PATCH,
    REPLAY_BUFFER_PATCH,
    NO_SYNC_GROUP_PATCH,
    BROADCAST_PATCH,
    VLLM_WORKER_PATCH,
)
