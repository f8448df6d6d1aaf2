"""A tiny Qwen2-style causal LM (random init) and its supervised warm start.

Why Qwen2: verl's FSDP engine, ``transformers`` and vLLM all support it natively, so the model runs
through the real actor and rollout code paths. Why this size (hidden 128, 2 layers, 2 heads of
head_dim 64, ~0.54M parameters): a training step takes a fraction of a second on 2 CPU cores, and
head_dim 64 is the smallest vLLM's CPU attention backend accepts.

Why a warm start: RL from a random model never sees a reward. The warm start trains on a mixture
of the rule and a competing habit (``letters.WARM_START_RIGHT``), until the model follows one of
the two on nearly every sampled answer (:data:`FOLLOWS_A_RULE`): it can then spell every digit,
but prefers the wrong alphabet, so GRPO groups hold both right and wrong answers from step 1.
"""

from __future__ import annotations

import random

import torch

from . import letters
from .tokenizer import EOS_TURN

FOLLOWS_A_RULE = 0.8  # stop when this fraction of sampled answers is the rule or the distractor, exactly
EVAL_EVERY = 100


def build_model(vocab_size: int, pad_token_id: int, eos_token_id: int, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer.encode(text, add_special_tokens=False)


@torch.no_grad()
def generate(
    model, tokenizer, prompts: list[str], *, greedy: bool, seed: int = 0, max_new_tokens: int = 16
) -> list[str]:
    """Decoded responses for ``prompts`` in one left-padded batch (temperature 1, no top-k/p when sampling)."""
    was_training = model.training
    model.eval()
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    width = max(map(len, encoded))
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    attention = torch.zeros_like(ids)
    for row, p in enumerate(encoded):
        ids[row, width - len(p) :] = torch.tensor(p)
        attention[row, width - len(p) :] = 1
    torch.manual_seed(seed)
    sampling = {} if greedy else {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
    out = model.generate(
        ids,
        attention_mask=attention,
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    model.train(was_training)
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def rates(model, tokenizer, pairs, *, greedy: bool, seed: int = 0, n: int = 128) -> dict:
    """Fractions of answers that are exactly right, and exactly the distractor, on ``n`` problems."""
    batch = random.Random(seed).sample(pairs, min(n, len(pairs)))
    texts = generate(model, tokenizer, [p for p, _ in batch], greedy=greedy, seed=seed)
    right = sum(t == a for t, (_, a) in zip(texts, batch))
    wrong = sum(t == letters.distractor(p) for t, (p, _) in zip(texts, batch))
    return {"right": right / len(batch), "distractor": wrong / len(batch)}


def warm_start(model, tokenizer, pairs, max_steps: int, seed: int, log=print) -> dict:
    """Supervised steps on the mixture until sampled answers follow a rule (:data:`FOLLOWS_A_RULE`)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    # 100 warm-up steps, then linear decay over max_steps (the first full-size Adam steps scramble a random init)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * max(0.05, 1 - s / max_steps)
    )
    model.train()
    sampled, step = {"right": 0.0, "distractor": 0.0}, 0
    for step in range(1, max_steps + 1):
        batch = []
        for prompt, target in rng.sample(pairs, 64):
            response = target if rng.random() < letters.WARM_START_RIGHT else letters.distractor(prompt)
            p = prompt_ids(tokenizer, prompt)
            batch.append((p + tokenizer.encode(response + EOS_TURN, add_special_tokens=False), len(p)))
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, n_prompt) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
            attention[row, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % EVAL_EVERY == 0:
            sampled = rates(model, tokenizer, pairs, greedy=False, seed=step)
            log(f"  warm start step {step}: loss {loss.item():.3f}, sampled {sampled}")
            if sampled["right"] + sampled["distractor"] >= FOLLOWS_A_RULE:
                break
    return {
        "warm_start_steps": step,
        "warm_start_sampled_accuracy": sampled["right"],
        "warm_start_sampled_distractor": sampled["distractor"],
    }
