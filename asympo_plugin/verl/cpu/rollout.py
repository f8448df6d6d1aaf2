"""Rollout backend ``hf``: generation with plain ``transformers`` in a Ray actor, for CPU runs.

verl 0.9.1 only wires vLLM, SGLang and TensorRT-LLM servers into its trainers, and none of them
runs next to verl on a CPU. This backend provides the three pieces verl's rollout code expects,
registered under the name ``hf`` (``actor_rollout_ref.rollout.name=hf``):

* :class:`HFRolloutServer`: a Ray actor holding a copy of the policy. ``generate`` samples one
  response token by token and returns its token ids, the log-prob of each sampled token under the
  sampling distribution (``log_softmax(logits / temperature)``, what verl's actor recomputes), and
  ``extra_fields`` with ``global_steps`` (verl's weight-version stamp; the trainers' metrics need it)
  and ``policy_version`` (how many optimizer updates the weights had seen; see ``staleness.py``).
* :class:`HFReplica`: verl's ``RolloutReplica`` that launches one server per replica, in the hybrid
  (synchronous) and standalone (one-step-off) layouts.
* :class:`HFServerAdapter`: verl's ``BaseRollout`` that lives in the process feeding weights to the
  server (the actor worker when hybrid, the checkpoint-engine worker when standalone); its
  ``update_weights`` gathers the streamed tensors and pushes one state dict to the server.

Requests are served one at a time (the model is tiny; batching would only matter for larger
models), and the server never aborts a request, so partial rollouts do not occur.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import ray
import torch

from verl.workers.rollout.base import _ROLLOUT_REGISTRY, BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput
from verl.workers.rollout.utils import ensure_async_iterator

from . import recorder

logger = logging.getLogger(__name__)

NAME = "hf"


def server_actor_name(replica_rank: int) -> str:
    return f"{NAME}_server_{replica_rank}_0"


def _model_path(model_config) -> str:
    """Local model directory from an ``HFModelConfig`` or the raw ``actor_rollout_ref.model`` DictConfig."""
    from verl.utils.fs import copy_to_local

    local = getattr(model_config, "local_path", None) if not hasattr(model_config, "_get_node") else None
    return local or copy_to_local(model_config.get("path") if hasattr(model_config, "get") else model_config.path)


class HFRolloutServer:
    """One replica's policy copy and sampler (a Ray actor; see the module docstring)."""

    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForCausalLM

        self.config = config
        self.replica_rank = replica_rank
        path = _model_path(model_config)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
        self.param_names = {name for name, _ in self.model.named_parameters()}
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            from transformers import AutoTokenizer

            eos = AutoTokenizer.from_pretrained(path).eos_token_id
        self.eos_token_ids = set(eos if isinstance(eos, list) else [eos])
        self.generator = torch.Generator().manual_seed(int(os.environ.get("ASYMPO_ROLLOUT_SEED", "0")) + replica_rank)
        self.global_steps = None
        self.policy_version = None
        self.pending_policy_version = None
        torch.set_num_threads(1)

    # -- generation -----------------------------------------------------------------------------

    def _max_new_tokens(self, n_prompt: int, sampling_params: dict) -> int:
        limit = sampling_params.pop("max_tokens", sampling_params.pop("max_new_tokens", None))
        room = self.config.prompt_length + self.config.response_length - n_prompt
        limit = min(self.config.response_length, room) if limit is None else min(limit, room)
        return max(1, limit)

    def _pick(self, logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> tuple[int, float]:
        """Sample one token; return it and its log-prob under ``log_softmax(logits / temperature)``."""
        logits = logits.float()
        if temperature <= 0:  # greedy (validation)
            log_probs = torch.log_softmax(logits, dim=-1)
            token = int(torch.argmax(logits))
            return token, float(log_probs[token])
        log_probs = torch.log_softmax(logits / temperature, dim=-1)
        filtered = log_probs.clone()
        if top_k is not None and 0 < top_k < filtered.numel():
            kth = torch.topk(filtered, top_k).values[-1]
            filtered[filtered < kth] = -float("inf")
        if top_p is not None and top_p < 1.0:
            sorted_lp, order = torch.sort(filtered, descending=True)
            cumulative = torch.cumsum(torch.softmax(sorted_lp, dim=-1), dim=-1)
            drop = cumulative - torch.softmax(sorted_lp, dim=-1) > top_p
            filtered[order[drop]] = -float("inf")
        token = int(torch.multinomial(torch.softmax(filtered, dim=-1), 1, generator=self.generator))
        return token, float(log_probs[token])

    @torch.no_grad()
    def _sample(self, prompt_ids: list[int], sampling_params: dict) -> tuple[list[int], list[float]]:
        params = dict(sampling_params)
        max_new = self._max_new_tokens(len(prompt_ids), params)
        if float(params.get("repetition_penalty", 1.0)) != 1.0:
            raise NotImplementedError("the 'hf' CPU rollout samples without repetition_penalty; leave it at 1.0")
        temperature = float(params.get("temperature", 1.0))
        top_k, top_p = int(params.get("top_k", -1)), float(params.get("top_p", 1.0))
        out = self.model(torch.tensor([prompt_ids]), use_cache=True)
        tokens, log_probs = [], []
        for _ in range(max_new):
            token, log_prob = self._pick(out.logits[0, -1], temperature, top_k, top_p)
            tokens.append(token)
            log_probs.append(log_prob)
            if token in self.eos_token_ids:
                break
            out = self.model(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
        return tokens, log_probs

    async def generate(self, request_id=None, *, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        # Synchronous body on purpose: a request never interleaves with a weight update.
        if kwargs.get("image_data") or kwargs.get("video_data") or kwargs.get("audio_data"):
            raise NotImplementedError("the 'hf' CPU rollout serves text-only models")
        tokens, log_probs = self._sample(list(prompt_ids), sampling_params)
        if recorder.directory() is not None:
            temperature = float(sampling_params.get("temperature", 1.0))
            recorder.sampled(self.replica_rank, prompt_ids, tokens, log_probs, self.policy_version, temperature)
        return TokenOutput(
            token_ids=tokens,
            log_probs=log_probs if sampling_params.get("logprobs") else None,
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps, "policy_version": self.policy_version},
        )

    # -- weights --------------------------------------------------------------------------------

    def set_pending_policy_version(self, version: int) -> None:
        """The version of the next weights pushed (set by the checkpoint manager before a sync)."""
        self.pending_policy_version = version

    def update_weights(self, state_dict: dict[str, torch.Tensor], global_steps: int | None = None) -> None:
        missing = self.param_names - set(state_dict)
        unknown = set(state_dict) - self.param_names
        if missing or unknown:
            raise RuntimeError(
                f"hf rollout: weight update does not match the model (missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unknown)[:5]}); the actor and rollout must load the same model.path"
            )
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, tensor in state_dict.items():
                params[name].copy_(tensor.to(params[name].dtype))
        self.global_steps = global_steps
        self.policy_version = self.pending_policy_version
        if recorder.directory() is not None:
            recorder.synced(self.model, self.replica_rank, self.policy_version, global_steps)

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    @torch.no_grad()
    def log_prob_of(self, prompt_ids: list[int], response_ids: list[int], temperature: float = 1.0) -> list[float]:
        """Log-probs of a given response under the server's weights (for checks and tests)."""
        ids = torch.tensor([list(prompt_ids) + list(response_ids)])
        logits = self.model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response_ids)[:, None])[:, 0].tolist()

    # -- lifecycle calls verl makes on every server; nothing to do on CPU -----------------------

    def get_server_address(self) -> tuple[str, int]:
        return f"{NAME}-replica-{self.replica_rank}", 0

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def wake_up(self, tags=None):
        return None

    async def sleep(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None


class HFReplica(RolloutReplica):
    """Launches one :class:`HFRolloutServer` for this replica (tensor parallel size 1)."""

    async def launch_servers(self):
        if self.world_size != 1:
            raise ValueError(
                "the 'hf' CPU rollout runs one process per replica: set actor_rollout_ref.rollout."
                "tensor_model_parallel_size=1 (and data/pipeline parallel size 1)"
            )
        server = (
            ray.remote(HFRolloutServer)
            .options(name=server_actor_name(self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        address, port = await server.get_server_address.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{address}:{port}"


class HFServerAdapter(BaseRollout):
    """Pushes weights to this replica's :class:`HFRolloutServer` (see the module docstring)."""

    def __init__(self, config, model_config, device_mesh=None, replica_rank: int = -1, **kwargs):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        self.replica_rank = rank if replica_rank == -1 else replica_rank
        # One process per replica: in the hybrid layout actor rank r feeds replica r.
        self.is_leader_rank = True
        self.server_handle = None

    def _server(self):
        if self.server_handle is None:
            self.server_handle = ray.get_actor(server_actor_name(self.replica_rank))
        return self.server_handle

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    @torch.no_grad()
    async def update_weights(
        self, weights, global_steps: int | None = None, wire_format: str = "named_tensors", **kwargs
    ):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the 'hf' CPU rollout takes full tensors, got wire_format={wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("the 'hf' CPU rollout does not take LoRA adapters; set model.lora.merge=True")
        # Every rank must drain the stream (gathering FSDP shards is collective); tensors may be
        # views of a reused buffer, hence the copy.
        state_dict = {}
        async for name, tensor in ensure_async_iterator(weights):
            state_dict[name] = tensor.detach().to("cpu", copy=True)
        await self._server().update_weights.remote(state_dict, global_steps)

    def generate_sequences(self, prompts):
        raise NotImplementedError("the 'hf' rollout serves the async agent loop only")


def register() -> None:
    """Register ``hf`` in verl's rollout registries (idempotent)."""
    RolloutReplicaRegistry.register(NAME, lambda: HFReplica)
    _ROLLOUT_REGISTRY[(NAME, "async")] = f"{HFServerAdapter.__module__}.{HFServerAdapter.__qualname__}"
