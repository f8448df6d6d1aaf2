"""CPU/test support only: OpenRLHF 0.11.2's real learner side (experience making + training) on a tiny local model.

Used by ``tests/openrlhf_adapter/test_openrlhf_trainer_on_cpu.py`` and ``benchmarks/bench_openrlhf_learner.py``.
Everything that runs is OpenRLHF's own code, with the adapter's patches (``worker.setup``) in this process
and, through Ray's ``worker_process_setup_hook``, in the actor's worker:

* ``RayActorGroup`` of one real ``PolicyModelActor`` (DeepSpeed, CPU accelerator, ZeRO-2, gloo; torch AdamW
  instead of the JIT-compiled FusedAdam: ``cpu/shims.py``), built by its own ``init_model_from_pretrained``;
* ``BasePPOTrainer.train_step``: ``RemoteExperienceMaker.make_experience_batch`` (the actor's old-log-prob
  forward, advantages), ``append`` to the actor's replay buffer, ``fit`` -> ``ActorPPOTrainer.ppo_train`` ->
  ``training_step``. Only generation is replaced: the rollout samples are given (fixed token ids and rewards),
  as ``SamplesGenerator`` would hand them over, so both losses train on the same batch.

:class:`DispatchCounter` counts, on the real dispatch path (``RayActorGroup.async_run_method_batch``, which
``_dispatch_forward`` calls), every ``forward`` that experience making sends to a model group.

The model: a random-init Qwen2 (2 layers, hidden 128, head_dim 64) with the character-level tokenizer of
``asympo_plugin.task``, saved locally (no network).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import time
from pathlib import Path


def save_tiny_model(directory: str | Path, *, hidden_size: int = 128, layers: int = 2, seed: int = 0) -> str:
    """A random-init Qwen2 and its tokenizer, saved to ``directory`` (returned as str)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ...task.tokenizer import build_tokenizer

    directory = Path(directory)
    if (directory / "config.json").exists():
        return str(directory)
    tokenizer = build_tokenizer()
    import torch

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=hidden_size // 64,
        num_key_value_heads=hidden_size // 64,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def openrlhf_argv(loss: str, model_dir: str, *, n_prompts: int, n_samples: int, lr: float, extra=()) -> list[str]:
    """An ``asympo-openrlhf`` command line for one optimizer step per ``train_step`` on the whole batch."""
    batch = n_prompts * n_samples
    return [
        "--actor.policy_loss_type",
        loss,
        "--actor.model_name_or_path",
        model_dir,
        "--algo.kl.init_coef",
        "0",
        "--algo.advantage.estimator",
        "group_norm",
        "--rollout.n_samples_per_prompt",
        str(n_samples),
        "--rollout.batch_size",
        str(n_prompts),
        "--rollout.micro_batch_size",
        str(batch),
        "--train.batch_size",
        str(batch),
        "--train.micro_batch_size",
        str(max(1, batch // 2)),
        "--actor.adam.lr",
        str(lr),
        "--actor.lr_warmup_ratio",
        "0",
        "--actor.lr_scheduler",
        "constant",
        "--ds.attn_implementation",
        "sdpa",
        "--ds.param_dtype",
        "bf16",
        *extra,
    ]


def rollout_samples(tokenizer, *, n_prompts: int, n_samples: int, prompt_len: int, response_len: int, seed: int = 0):
    """Per-sample ``Experience`` objects as OpenRLHF's ``SamplesGenerator`` hands them to ``train_step``.

    Responses have different lengths (right-padded, masked); rewards alternate 1/0 inside each prompt's group,
    so every group has positive and negative advantages.
    """
    import torch
    from openrlhf.trainer.ppo_utils.experience import Experience

    g = torch.Generator().manual_seed(seed)
    low = len(tokenizer) - 40  # ordinary characters (the tail of the vocabulary), never a special token
    samples = []
    for p in range(n_prompts):
        prompt = torch.randint(low, len(tokenizer), (prompt_len,), generator=g)
        for s in range(n_samples):
            length = int(torch.randint(response_len // 2, response_len + 1, (1,), generator=g))
            response = torch.full((response_len,), tokenizer.pad_token_id)
            response[:length] = torch.randint(low, len(tokenizer), (length,), generator=g)
            reward = float(s % 2 == 0)
            action_mask = torch.arange(response_len) < length
            attention_mask = torch.cat([torch.ones(prompt_len, dtype=torch.long), action_mask.long()])
            samples.append(
                Experience(
                    sequences=torch.cat([prompt, response])[None],
                    attention_mask=attention_mask[None],
                    action_mask=action_mask[None],
                    prompts=[f"prompt {p}"],
                    labels=[""],
                    images=[None],
                    mm_train_inputs=[None],
                    rewards=torch.tensor([reward]),
                    scores=torch.tensor([reward]),
                    response_length=torch.tensor([length]),
                    truncated=torch.tensor([False]),
                    total_length=torch.tensor([prompt_len + length]),
                    info={"reward": torch.tensor([reward]), "response_clip_ratio": torch.tensor([False])},
                )
            )
    return samples


class DispatchCounter:
    """Counts the model-group calls made through ``RayActorGroup.async_run_method_batch`` (the real dispatch).

    ``calls[(actor class, method)]``; experience making's old-log-prob forward is ``("PolicyModelActor",
    "forward")``. Only counts: every call still runs OpenRLHF's method.
    """

    def __init__(self):
        self.calls: collections.Counter = collections.Counter()

    @contextlib.contextmanager
    def counting(self):
        from openrlhf.trainer.ray.launcher import RayActorGroup

        original = RayActorGroup.async_run_method_batch

        def async_run_method_batch(group, method_name, **kwargs):
            self.calls[(_actor_name(group), method_name)] += 1
            return original(group, method_name, **kwargs)

        RayActorGroup.async_run_method_batch = async_run_method_batch
        try:
            yield self
        finally:
            RayActorGroup.async_run_method_batch = original


def _actor_name(group) -> str:
    cls = group.ray_actor_type
    meta = getattr(cls, "__ray_metadata__", None)
    return getattr(meta, "class_name", None) or getattr(cls, "__name__", repr(cls))


class Learner:
    """One real ``PolicyModelActor`` (a Ray actor) and OpenRLHF's ``BasePPOTrainer`` driving it (this process)."""

    def __init__(self, argv: list[str], max_steps: int = 100):
        import ray
        from openrlhf.trainer.ppo_trainer import BasePPOTrainer
        from openrlhf.trainer.ray.launcher import RayActorGroup
        from openrlhf.trainer.ray.ppo_actor import PolicyModelActor
        from openrlhf.utils import get_strategy, get_tokenizer

        from .. import launcher

        self.args = launcher.parse_args(argv)
        self.strategy = get_strategy(self.args)
        model_dir = self.args.actor.model_name_or_path
        self.group = RayActorGroup(1, 1, PolicyModelActor, pg=None, num_gpus_per_actor=1)
        ray.get(self.group.async_init_model_from_pretrained(self.strategy, model_dir, max_steps))
        self.tokenizer = get_tokenizer(model_dir, None, "left", self.strategy)
        self.trainer = BasePPOTrainer(self.strategy, self.group, None, None, None, None, self.tokenizer)
        self.global_step = 0

    def train_step(self, samples, counter: DispatchCounter | None = None) -> tuple[dict, float]:
        """OpenRLHF's ``train_step`` on a copy of ``samples``: ``(status, wall seconds)``."""
        samples = copy.deepcopy(samples)
        ctx = counter.counting() if counter is not None else contextlib.nullcontext()
        with ctx:
            t0 = time.perf_counter()
            status, self.global_step = self.trainer.train_step(samples, self.global_step)
            seconds = time.perf_counter() - t0
        return status, seconds

    def response_log_probs(self, samples):
        """Per-sample summed response log-prob under the actor's current weights (the actor's own forward)."""
        import ray
        import torch

        refs = self.group.async_run_method_batch(
            method_name="forward",
            sequences=[s.sequences for s in samples],
            action_mask=[s.action_mask for s in samples],
            attention_mask=[s.attention_mask for s in samples],
        )
        out = [lp for chunk in ray.get(refs) for lp in chunk]
        return torch.stack([(lp.float() * s.action_mask).sum() for lp, s in zip(out, samples)])

    def close(self) -> None:
        import ray

        for actor in self.group._actor_handlers:
            ray.kill(actor)


def init_ray() -> None:
    """Ray with the adapter's worker setup hook and the CPU environment (what ``asympo-openrlhf --asympo.cpu`` does)."""
    import ray

    from ..launcher import ray_init_kwargs

    if not ray.is_initialized():
        ray.init(**ray_init_kwargs(cpu=True), include_dashboard=False, log_to_driver=False)
