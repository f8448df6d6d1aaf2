"""The in-process engine of the stability frontier (issue 13, part 2): one study cell in one process.

A real cell (``runner.run_cell``) starts Ray, verl's trainer, an FSDP actor and an ``hf`` rollout
server, and takes 4-10 minutes for 50 steps on 2 cores; the frontier needs over a hundred cells of
150 steps. This runs the *same* cell (same resolved config, model, task, optimizer) without the
processes around it, and keeps verl's code wherever the result depends on it:

* the config: :func:`asympo_plugin.verl.launcher.build_config` of the cell's own ``asympo-train``
  command line (``runner.cell_argv``), so every setting is the one the real cell resolves to;
* the advantage: verl's ``ray_trainer.compute_advantage`` (GRPO or GPG, by the config);
* the loss: verl's ``verl.workers.utils.losses.ppo_loss`` (with the plugin's behavior-free patch, as in
  verl's engines), which looks the loss up in verl's registry by ``policy_loss.loss_mode``;
* the optimizer: ``torch.optim.AdamW`` with the config's lr, betas and weight decay, verl's warm-up
  schedule, gradient clipping at ``actor.grad_clip``, and the step skipped on a non-finite norm, as
  verl's FSDP engine does.

What is this engine's own: sampling (HF ``generate`` at the rollout temperature, as the ``hf`` rollout
samples), reward (``letters.compute_score`` on the decoded response, as verl's reward manager calls it),
and the staleness: batch ``t`` is sampled by policy version ``max(0, t - 1 - staleness)``, the versions
verl's one-step-off trainer (staleness 1) and the delayed weight sync (``delayed_sync.py``, staleness
``k``) deliver; the rollout log-probs that PPO-clip bypass reads are that version's, as the ``hf``
rollout ships them. Not modelled: verl's data loader order (same seed, different permutation) and
its rollout's random stream, so engine and real cells agree in distribution, not sample by sample.
``docs/study/engine-validation`` holds the comparison against real cells.

A run writes the real cell's files (``metrics.jsonl`` in verl's file-logger format with verl's metric
names, ``config.yaml``, ``DONE.json``), so ``analysis`` and ``report`` read both kinds the same way.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..core.metrics import REWARD, STALENESS_PREFIX, STEP_TIME

ENGINE = "in-process"


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    return ids, mask


def _responses(generated: torch.Tensor, eos: int, pad: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses cut after their first EOS (kept, as verl keeps it), right-padded to ``width``."""
    out = torch.full((generated.shape[0], width), pad)
    mask = torch.zeros_like(out)
    for i, row in enumerate(generated.tolist()):
        row = row[:width]
        if eos in row:
            row = row[: row.index(eos) + 1]
        out[i, : len(row)] = torch.tensor(row, dtype=out.dtype)
        mask[i, : len(row)] = 1
    return out, mask


def _log_probs(model, prompts, prompt_mask, responses, response_mask, temperature: float) -> torch.Tensor:
    """Per-token log-probs of the responses under ``log_softmax(logits / temperature)`` (verl's actor)."""
    ids = torch.cat([prompts, responses], dim=1)
    attention = torch.cat([prompt_mask, response_mask], dim=1)
    position = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=position).logits
    logits = logits[:, prompts.shape[1] - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)


def _ppo_loss_inputs(log_prob, prompts, prompt_mask, responses, response_mask, fields: dict):
    """The ``(model_output, data)`` pair verl's engine hands to ``ppo_loss``: flat log-probs, one micro-batch."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    flat = []
    for i in range(log_prob.shape[0]):
        p, r = int(prompt_mask[i].sum()), int(response_mask[i].sum())
        flat.append(torch.cat([log_prob.new_zeros(p - 1), log_prob[i, :r], log_prob.new_zeros(1)]))
    # The prompt's padding moved to the right of its tokens is what verl's attention mask says: only counts matter.
    data = TensorDict(
        {
            "prompts": prompts,
            "responses": responses,
            "attention_mask": torch.cat([prompt_mask, response_mask], dim=1),
            "response_mask": response_mask,
            **fields,
        },
        batch_size=log_prob.shape[0],
    )
    tu.assign_non_tensor(
        data, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=log_prob.shape[0]
    )
    return {"log_probs": torch.cat(flat)}, data


def _value(metric) -> float:
    v = metric.aggregate() if hasattr(metric, "aggregate") else metric
    return float(v.item() if torch.is_tensor(v) else v)


class Engine:
    """One cell: ``Engine(cfg, staleness, seed).train(steps, metrics_path)``."""

    def __init__(self, cfg, staleness: int, seed: int):
        import verl  # noqa: F401  (loads the plugin: losses registered, ppo_loss patched)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from verl.utils.config import omega_conf_to_dataclass

        from ..task import letters
        from ..task.model import prompt_ids

        self.cfg, self.staleness, self.seed = cfg, staleness, seed
        actor = cfg.actor_rollout_ref.actor
        self.actor_cfg = omega_conf_to_dataclass(actor)
        rollout = cfg.actor_rollout_ref.rollout
        self.n, self.temperature = int(rollout.n), float(rollout.temperature)
        self.response_length = int(cfg.data.max_response_length)
        self.batch_size = int(cfg.data.train_batch_size)
        self.bypass = bool(cfg.algorithm.rollout_correction.bypass_mode)
        self.loss_mode = actor.policy_loss.loss_mode
        from ..verl.behavior_free import uses_behavior_log_probs

        self.reads_old = uses_behavior_log_probs(cfg)

        path = cfg.actor_rollout_ref.model.path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        torch.manual_seed(seed)
        self.model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        self.model.train()
        self.sampler = copy.deepcopy(self.model).eval()
        self.versions = [self._snapshot()]  # versions[v]: the weights after v updates

        optim = actor.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay
        )
        warmup = int(optim.lr_warmup_steps) if int(optim.lr_warmup_steps) > 0 else 0
        if warmup:  # verl's constant schedule with linear warm-up (verl.utils.torch_functional)
            from verl.utils.torch_functional import get_constant_schedule_with_warmup

            self.scheduler = get_constant_schedule_with_warmup(self.optimizer, num_warmup_steps=warmup)
        else:
            self.scheduler = None
        self.grad_clip = float(actor.grad_clip)

        train, val = letters.split()
        self.train_prompts = [prompt_ids(self.tokenizer, p) for p, _ in train]
        self.train_answers = [a for _, a in train]
        self.val = [(prompt_ids(self.tokenizer, p), a) for p, a in val]
        self.order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(cfg.data.seed))).tolist()
        self.rng = torch.Generator().manual_seed(1_000_003 * seed + 17)
        self.score = letters.compute_score
        self.data_source = letters.DATA_SOURCE

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def _generate(self, model, rows: list[list[int]], greedy: bool) -> tuple[torch.Tensor, ...]:
        prompts, prompt_mask = _left_pad(rows, self.tokenizer.pad_token_id)
        kwargs = (
            dict(do_sample=False) if greedy else dict(do_sample=True, temperature=self.temperature, top_k=0, top_p=1.0)
        )
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.rng))
        torch.manual_seed(seed)
        out = model.generate(
            prompts,
            attention_mask=prompt_mask,
            max_new_tokens=self.response_length,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            **kwargs,
        )
        responses, response_mask = _responses(
            out[:, prompts.shape[1] :], self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, self.response_length
        )
        return prompts, prompt_mask, responses, response_mask

    def _rewards(self, responses, response_mask, answers) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(responses * response_mask, skip_special_tokens=True)
        return torch.tensor([self.score(self.data_source, t, a) for t, a in zip(texts, answers)], dtype=torch.float32)

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        _, _, responses, mask = self._generate(self.model, [p for p, _ in self.val], greedy=True)
        self.model.train()
        return float(self._rewards(responses, mask, [a for _, a in self.val]).mean())

    def step(self, t: int) -> dict:
        """Training step ``t`` (1-based): sample with a stale version, score, advantage, one update."""
        from verl import DataProto
        from verl.trainer.ppo.ray_trainer import compute_advantage
        from verl.workers.utils.losses import ppo_loss

        from ..verl import losses

        start = time.perf_counter()
        version = max(0, t - 1 - self.staleness)
        self.sampler.load_state_dict(self.versions[version])
        picks = [self.order[((t - 1) * self.batch_size + i) % len(self.order)] for i in range(self.batch_size)]
        rows = [self.train_prompts[i] for i in picks for _ in range(self.n)]
        answers = [self.train_answers[i] for i in picks for _ in range(self.n)]
        prompts, prompt_mask, responses, response_mask = self._generate(self.sampler, rows, greedy=False)
        scores = self._rewards(responses, response_mask, answers)

        last = response_mask.sum(-1) - 1
        token_rewards = torch.zeros(response_mask.shape)
        token_rewards[torch.arange(len(scores)), last] = scores
        batch = DataProto.from_dict(
            tensors={"token_level_rewards": token_rewards, "response_mask": response_mask.float()},
            non_tensors={"uid": np.array([str(i // self.n) for i in range(len(scores))], dtype=object)},
        )
        alg = self.cfg.algorithm
        batch = compute_advantage(
            batch, adv_estimator=alg.adv_estimator, norm_adv_by_std_in_grpo=alg.norm_adv_by_std_in_grpo, config=alg
        )
        fields = {"advantages": batch.batch["advantages"]}
        if self.reads_old:  # bypass: the sampler's own log-probs; recompute: the current actor's, before the update
            with torch.no_grad():
                source = self.sampler if self.bypass else self.model
                fields["old_log_probs"] = _log_probs(
                    source, prompts, prompt_mask, responses, response_mask, self.temperature
                )

        log_prob = _log_probs(self.model, prompts, prompt_mask, responses, response_mask, self.temperature)
        output, data = _ppo_loss_inputs(log_prob, prompts, prompt_mask, responses, response_mask, fields)
        # verl's own losses log the scale diagnostics too, as in the real cells (ASYMPO_BUILTIN_DIAGNOSTICS=1)
        with losses.builtin_diagnostics_within():
            loss, loss_metrics = ppo_loss(self.actor_cfg, output, data)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
        if math.isfinite(grad_norm):  # verl's engine skips the update on a non-finite norm
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.versions.append(self._snapshot())
        keep = max(0, len(self.versions) - self.staleness - 2)  # older versions are never sampled again
        for v in range(keep):
            self.versions[v] = None

        metrics = {k: _value(v) for k, v in loss_metrics.items()}
        metrics.update(
            {
                "actor/grad_norm": grad_norm,
                "actor/lr": self.optimizer.param_groups[0]["lr"],
                REWARD: float(scores.mean()),
                "response_length/mean": float(response_mask.sum(-1).float().mean()),
                f"{STALENESS_PREFIX}/mean": float(t - 1 - version),
                f"{STALENESS_PREFIX}/max": float(t - 1 - version),
                f"{STALENESS_PREFIX}/min": float(t - 1 - version),
                "training/global_step": t,
            }
        )
        metrics[STEP_TIME] = time.perf_counter() - start
        return metrics

    def train(self, steps: int, metrics_path: Path, test_freq: int, log=None) -> None:
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        val_key = f"val-core/{self.data_source}/acc/mean@1"
        with open(metrics_path, "w") as f:
            for t in range(1, steps + 1):
                m = self.step(t)
                if t % test_freq == 0 or t == steps:  # verl validates every test_freq steps and after the last
                    m[val_key] = self.validate()
                f.write(json.dumps({"step": t, "data": m}) + "\n")
                f.flush()
                if log is not None and (t % 10 == 0 or t == steps):
                    log(f"  step {t}/{steps}: reward {m[REWARD]:.3f}, {m[STEP_TIME]:.2f} s/step")


def configure_threads() -> None:
    """One heavy job per core budget: the engine is single-process; let torch use what is there."""
    torch.set_num_threads(int(os.environ.get("ASYMPO_ENGINE_THREADS", "2")))


def engine_config(cell, preset, task, run_dir: Path):
    """The cell's resolved verl config: exactly what ``asympo-train`` composes for the real cell."""
    from ..verl import launcher
    from .runner import cell_argv

    argv = cell_argv(cell, preset, task, run_dir)
    assert argv[0] == "--sync-delay" and argv[2] == "--save-config", argv[:4]
    cfg, _, _ = launcher.build_config(argv[4:])
    return cfg, argv


def run_cell(cell, preset, task, root: Path, log=None) -> tuple[bool, float, str]:
    """The engine's ``runner.run_cell``: same directory layout and files, ``DONE.json`` names the engine."""
    from omegaconf import OmegaConf

    from .runner import complete_steps, write_marker
    from ..demo import read_metrics

    run_dir = cell.run_dir(root)
    cfg, argv = engine_config(cell, preset, task, run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml")
    start = time.monotonic()
    Engine(cfg, cell.staleness, cell.seed).train(preset.steps, run_dir / "metrics.jsonl", preset.test_freq, log=log)
    wall = time.monotonic() - start
    if not complete_steps(read_metrics(run_dir / "metrics.jsonl"), preset.steps):
        return False, wall, "INCOMPLETE metrics"
    write_marker(run_dir, cell, argv, wall, task, engine=ENGINE)
    return True, wall, ""
