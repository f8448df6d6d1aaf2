"""Ray's ``worker_process_setup_hook`` for OpenRLHF runs: installs the adapter's patches in every Ray worker.

OpenRLHF's trainer code runs in Ray actors (``PolicyModelActor``, ``PPOTrainer``, the async
``TrainingActor``), so the patches (``wiring.PATCHES``) must be installed there. ``asympo-openrlhf``
passes ``HOOK`` to ``ray.init``; on an existing cluster pass it yourself::

    ray job submit --runtime-env-json '{"worker_process_setup_hook": "asympo_plugin.openrlhf.worker.setup"}' \\
        -- asympo-openrlhf --actor.policy_loss_type asympo ...

Each patch is applied right after its OpenRLHF module is first imported (``patching.install``), so a
worker imports nothing it would not import anyway (vLLM's engine actors never import the trainer).
With ``ASYMPO_OPENRLHF_CPU=1`` the CPU test support is activated first (``cpu/``).
"""

from __future__ import annotations

HOOK = "asympo_plugin.openrlhf.worker.setup"


def setup() -> None:
    from .. import patching
    from . import cpu
    from .wiring import PATCHES

    if cpu.enabled():
        cpu.activate()
    patching.install(PATCHES)
