"""The one change to verl's own code a CPU run cannot do without (a guarded ``Patch``).

Everything else in the CPU backend goes through verl's registries. Diff for review and upstreaming:
``patches/cpu_gloo_process_group.diff``.
"""

from __future__ import annotations

from ...patching import Patch


def _plain_gloo(original):
    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    return initialize_global_process_group_ray


GLOO_PROCESS_GROUP_PATCH = Patch(
    name="cpu_gloo_process_group",
    why=(
        "verl builds the process-group backend as f'cpu:gloo,{device}:{backend}', which on the CPU platform is "
        "'cpu:gloo,cpu:gloo'; torch rejects a device listed twice. On CPU the whole group is plain 'gloo'."
    ),
    module="verl.utils.distributed",
    attr="initialize_global_process_group_ray",
    source_sha256="761a94d1a2e058d31a0ac231c89a142abf5daf822e333bac75e84cafcf7507ac",
    make_replacement=_plain_gloo,
)
