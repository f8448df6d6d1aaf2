"""The changes to verl's own code a CPU run needs (guarded ``Patch``es): plain gloo groups, a faster replay-buffer poll.

Everything else in the CPU backend goes through verl's registries. Diff for review and upstreaming:
``patches/cpu_gloo_process_group.diff``, ``patches/cpu_replay_buffer_poll.diff``.
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


# verl's V1 replay buffer checks for finished trajectories every 2 s (``poll_interval``, not exposed in
# its config). A CPU step of the built-in task is a few seconds, so the poll rounds every generation up
# to the next multiple of 2 s (``timing_s/gen`` of 6.03, 8.04, 10.07 s were measured): it decides the
# step time, not the rollout does. On CPU the buffer polls every 0.1 s instead.
CPU_POLL_INTERVAL_S = 0.1
_POLL_INTERVAL_POSITION = 5  # trainer_mode, trainer_config, max_off_policy_threshold/strategy, sampler_kwargs


def _fast_poll(original):
    def __init__(self, *args, **kwargs):
        if len(args) <= _POLL_INTERVAL_POSITION:  # poll_interval not given positionally
            kwargs.setdefault("poll_interval", CPU_POLL_INTERVAL_S)
        original(self, *args, **kwargs)

    return __init__


REPLAY_BUFFER_POLL_PATCH = Patch(
    name="cpu_replay_buffer_poll",
    why=(
        "verl's V1 ReplayBuffer waits 2 s between checks for finished trajectories, which on CPU rounds every "
        "generation up to a multiple of 2 s; on CPU it checks every 0.1 s."
    ),
    module="verl.trainer.ppo.v1.replay_buffer",
    attr="ReplayBuffer.__init__",
    source_sha256="0c37a4862999198830cd4b4835116df2d6e672d105caee9491487f748d94bb90",
    make_replacement=_fast_poll,
)

CPU_PATCHES = (GLOO_PROCESS_GROUP_PATCH, REPLAY_BUFFER_POLL_PATCH)
