"""The OpenRLHF 0.11.2 adapter: ASymPO and SPO in OpenRLHF's real PPO trainer, behavior-free.

OpenRLHF has no extension point for policy losses (no registry, entry point or hook), so the adapter is
a launcher plus guarded patches (``asympo_plugin.patching``; each has a reviewable ``patches/openrlhf_<name>.diff``
against the installed 0.11.2 source, listed in ``patches/README.md`` and tested to apply):

* ``launcher.py``: ``asympo-openrlhf``, every flag of ``python -m openrlhf.cli.train_ppo_ray`` plus
  ``--actor.policy_loss_type asympo|spo`` and the loss settings; refuses bad input before Ray starts;
  starts Ray with a ``worker_process_setup_hook`` (``worker.py``) that installs the patches in every worker.
* ``loss.py``: ``AsympoPolicyLoss``, a ``PolicyLoss`` subclass around the framework-free core
  (``asympo_plugin.core.policy_loss``), reduced with OpenRLHF's ``aggregate_loss(**loss_batch_info)``;
  its patches put it into ``ActorPPOTrainer`` and its metrics into OpenRLHF's logged status.
* ``behavior_free.py``: experience making skips the actor's old-log-prob forward for these losses, and
  the settings that would read the log-probs it no longer computes are refused.
* ``compat.py``: the one supported OpenRLHF version.
* ``cpu/``: CPU/test support only (a flash-attn stub, CUDA-call shims, CPU weight sync); loaded only
  with ``ASYMPO_OPENRLHF_CPU=1`` and refused where CUDA is available.

Importing this package imports neither OpenRLHF nor Ray and patches nothing.
"""
