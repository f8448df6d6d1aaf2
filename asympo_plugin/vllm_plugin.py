"""vLLM's ``vllm.general_plugins`` entry point: the plugin's CPU fix for vLLM, in CPU runs only.

vLLM calls every plugin of that group in each of its processes (the engine and worker processes it
spawns included). This module imports nothing but the standard library: outside a plugin CPU run
(``ASYMPO_CPU=1``, set by verl's ``trainer.device=cpu``; ``ASYMPO_OPENRLHF_CPU=1``, set by
``asympo-openrlhf --asympo.cpu``) it returns at once, so a GPU run loads none of the CPU support. In a CPU
run it installs ``asympo_plugin.vllm_cpu.VLLM_CPU_LINEAR_RELOAD_PATCH`` when vLLM's platform is the CPU.
"""

from __future__ import annotations

import os


def register() -> None:
    if os.environ.get("ASYMPO_CPU") == "1":  # verl's CPU backend (its vllm_fixes module needs omegaconf)
        from .verl.cpu.vllm_fixes import register as register_cpu_fixes

        register_cpu_fixes()
    elif os.environ.get("ASYMPO_OPENRLHF_CPU") == "1":  # OpenRLHF's venv has no verl
        from .vllm_cpu import install_on_cpu_platform

        install_on_cpu_platform()
