"""A tiny Qwen2-style causal LM (random init) and its supervised warm start.

Why Qwen2: verl's FSDP engine and ``transformers`` both support it natively, so the model runs
through the real actor and rollout code paths. Why tiny (hidden 64, 2 layers, ~0.1M parameters):
a training step then takes a fraction of a second on 2 CPU cores.

Why a warm start: RL from a random model never sees a reward. A few hundred supervised steps on
the training prompts bring the sampled accuracy up from 0 but, stopped early, leave it well below
1, so GRPO groups have both positive and negative responses from the first step.
"""

from __future__ import annotations

import random

import torch

from .tokenizer import EOS_TURN


def build_model(vocab_size: int, pad_token_id: int, eos_token_id: int, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
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


def _encode(tokenizer, prompt: str, answer: str) -> tuple[list[int], int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    answer_ids = tokenizer.encode(answer + EOS_TURN, add_special_tokens=False)
    return prompt_ids + answer_ids, len(prompt_ids)


@torch.no_grad()
def sampled_accuracy(model, tokenizer, pairs, n: int = 64, seed: int = 0) -> float:
    """Accuracy of temperature-1 samples (what the rollout does) on ``n`` problems."""
    model.eval()
    rng = random.Random(seed)
    batch = rng.sample(pairs, min(n, len(pairs)))
    correct = 0
    torch.manual_seed(seed)
    for prompt, answer in batch:
        ids, n_prompt = _encode(tokenizer, prompt, answer)
        out = model.generate(
            torch.tensor([ids[:n_prompt]]),
            max_new_tokens=4,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        text = tokenizer.decode(out[0, n_prompt:], skip_special_tokens=True)
        correct += text.strip() == answer
    model.train()
    return correct / len(batch)


def warm_start(model, tokenizer, pairs, target: float, max_steps: int, seed: int, log=print) -> dict:
    """Supervised steps on the answers until sampled accuracy reaches ``target`` (or ``max_steps``)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    encoded = [_encode(tokenizer, p, a) for p, a in pairs]
    model.train()
    acc, step = 0.0, 0
    for step in range(1, max_steps + 1):
        batch = rng.sample(encoded, 32)
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
        optimizer.step()
        if step % 50 == 0:
            acc = sampled_accuracy(model, tokenizer, pairs, seed=step)
            log(f"  warm start step {step}: loss {loss.item():.3f}, sampled accuracy {acc:.2f}")
            if acc >= target:
                break
    return {"warm_start_steps": step, "warm_start_sampled_accuracy": acc}
