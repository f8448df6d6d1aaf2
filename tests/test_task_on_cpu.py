"""The built-in task: disjoint train/validation strings, responses of several tokens whose lengths differ,
an exact-match rule-based reward, a head_dim-64 model, and a warm start that prefers the wrong habit."""

from __future__ import annotations

import pytest

from asympo_plugin.task import letters, prepare
from asympo_plugin.task.tokenizer import EOS_TURN, build_tokenizer


def test_validation_strings_are_never_trained_on():
    train, val = letters.split()
    assert len(train) == letters.N_TRAIN and len(val) == letters.N_VAL
    assert not {p for p, _ in train} & {p for p, _ in val}
    assert letters.split() == (train, val)  # deterministic


def test_responses_are_several_tokens_of_varying_length():
    tokenizer = build_tokenizer()
    train, _ = letters.split()
    lengths = {len(tokenizer.encode(a + EOS_TURN, add_special_tokens=False)) for _, a in train}
    assert min(lengths) >= 4 and max(lengths) <= 16 and len(lengths) >= 5


def test_reward_is_exact_match_of_the_per_digit_rule():
    assert letters.answer("3071") == "dahb"
    assert letters.distractor("3071") == "nkrl"
    assert letters.compute_score(letters.DATA_SOURCE, " dahb\n", "dahb") == 1.0
    assert letters.compute_score(letters.DATA_SOURCE, "dahc", "dahb") == 0.0
    assert letters.compute_score(letters.DATA_SOURCE, "dah", "dahb") == 0.0
    assert letters.compute_score(letters.DATA_SOURCE, letters.distractor("3071"), "dahb") == 0.0
    # The rule, not a table: every answer is the per-digit map of its prompt.
    for prompt, target in letters.split()[1]:
        assert target == "".join("abcdefghij"[int(d)] for d in prompt)


@pytest.fixture(scope="module")
def task():
    return prepare()


def test_prepared_model_has_head_dim_64_and_a_versioned_cache(task):
    assert letters.VERSION in task.root.name
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(task.model_dir)
    assert config.hidden_size // config.num_attention_heads == 64


def test_warm_start_can_spell_but_prefers_the_distractor(task):
    """What gives RL something to learn: sampled answers mostly follow one of the two rules, the right one
    at most 35% of the time, and greedy answers on unseen validation strings are mostly the distractor."""
    info = task.info
    assert info["warm_start_sampled_accuracy"] <= 0.35
    assert info["warm_start_sampled_accuracy"] + info["warm_start_sampled_distractor"] >= 0.8
    assert info["val_sampled"]["right"] <= 0.35
    assert info["val_greedy"]["distractor"] > info["val_greedy"]["right"]


def test_openrlhf_reward_file_scores_as_verl_does(tmp_path):
    """OpenRLHF loads ``reward_func`` by file path (``--reward.remote_url FILE.py``) and passes the decoded
    prompt + response with special tokens kept; the score must be verl's ``compute_score`` of the response."""
    import importlib.util
    import json

    from asympo_plugin.task import openrlhf_task

    spec = importlib.util.spec_from_file_location("reward_func", openrlhf_task.__file__)  # as OpenRLHF does
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer = build_tokenizer()
    rows = [
        json.loads(line) for line in openrlhf_task.write_prompts(tmp_path / "p.jsonl", n=3).read_text().splitlines()
    ]
    assert len(rows) == 3 and all(r["label"] == letters.answer(r["prompt"][0]["content"]) for r in rows)
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        for response, want in ((row["label"], 1.0), (letters.distractor(row["prompt"][0]["content"]), 0.0)):
            ids = tokenizer(prompt + response, add_special_tokens=False)["input_ids"]
            query = tokenizer.decode([*ids, tokenizer.convert_tokens_to_ids(EOS_TURN)], skip_special_tokens=False)
            got = module.reward_func([query], [prompt], [row["label"]])
            assert (
                float(got["rewards"][0]) == want == letters.compute_score(letters.DATA_SOURCE, response, row["label"])
            )
    with pytest.raises(ValueError, match="does not start with its prompt"):
        module.reward_func(["other"], ["prompt"], ["x"])
