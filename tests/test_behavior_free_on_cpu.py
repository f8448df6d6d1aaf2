"""Behavior-free pipelines in verl 0.9.1 (asympo_plugin/behavior_free.py), on CPU with real verl objects.

* the patches: applied in every process on ``import verl``, idempotent, refusing a changed verl;
* the old-log-prob stage of the one-step-off / fully-async trainers and of the V1 trainers: no actor
  call for a behavior-free loss, verl's own path (actor call or bypass copy) for PPO-clip;
* verl's ``ppo_loss`` without ``old_log_probs``: works for asympo/spo/gpg, fails as stock for vanilla;
* ``configure``: the driver-side settings and refusals;
* Megatron context parallelism: verl's own CP split/gather code, 2 emulated ranks, ASymPO loss and
  gradients equal to CP=1.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest
from patch_diffs import assert_diff_applies
import torch
from omegaconf import OmegaConf

import verl  # noqa: F401  (loads the plugin: registers the losses, installs the patches)
from asympo_plugin.verl import behavior_free as bf
from asympo_plugin.verl import settings
from asympo_plugin.patching import PatchError

REPO = Path(__file__).resolve().parents[1]
BEHAVIOR_FREE = ["asympo", "spo", "gpg"]


def _import_all_patched_modules():
    import verl.experimental.fully_async_policy.fully_async_rollouter  # noqa: F401
    import verl.experimental.fully_async_policy.fully_async_trainer  # noqa: F401
    import verl.experimental.one_step_off_policy.ray_trainer  # noqa: F401
    import verl.trainer.ppo.v1  # noqa: F401
    import verl.workers.engine_workers  # noqa: F401


def _owner_and_name(patch):
    owner = importlib.import_module(patch.module)
    *parents, name = patch.attr.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, name


# ------------------------------------------------------------------------------------------------ patches


def test_every_patch_is_applied_to_the_pinned_verl_and_twice_is_a_no_op():
    _import_all_patched_modules()
    assert all(bf.applied().values()), bf.applied()
    before = {p.name: getattr(*_owner_and_name(p)) for p in bf.PATCHES}
    bf.apply()
    bf.apply()
    after = {p.name: getattr(*_owner_and_name(p)) for p in bf.PATCHES}
    assert before == after
    for patch in bf.PATCHES:  # the patch really replaced verl's function, once (no wrapper of a wrapper)
        fn = after[patch.name]
        assert bf.is_patched(fn) and not bf.is_patched(fn.__wrapped__)


def test_both_async_trainers_and_the_engine_worker_use_the_patched_functions():
    """One patch covers one-step-off and fully-async because neither overrides the stage."""
    _import_all_patched_modules()
    from verl.experimental.fully_async_policy.fully_async_trainer import FullyAsyncTrainer
    from verl.experimental.one_step_off_policy.ray_trainer import OneStepOffRayTrainer
    from verl.experimental.separation.ray_trainer import SeparateRayPPOTrainer
    from verl.workers import engine_workers
    from verl.workers.utils import losses

    stage = SeparateRayPPOTrainer._fit_compute_log_prob
    assert bf.is_patched(stage)
    assert OneStepOffRayTrainer._fit_compute_log_prob is stage
    assert FullyAsyncTrainer.__ray_actor_class__._fit_compute_log_prob is stage
    # @ray.remote wrapped the trainer's methods when verl's module was imported; the wrapper Ray
    # instantiates must call the patched stage (the plugin loads, and patches, before that import).
    ray_trainer = object.__new__(FullyAsyncTrainer.__ray_metadata__.modified_class)
    ray_trainer.config, ray_trainer.metrics = trainer_config("asympo"), {}
    ray_trainer.actor_rollout_wg = RecordingWorkerGroup()
    batch = rollout_batch()
    assert ray_trainer._fit_compute_log_prob(batch) is batch and ray_trainer.actor_rollout_wg.calls == []
    assert engine_workers.ppo_loss is losses.ppo_loss and bf.is_patched(losses.ppo_loss)


def test_a_module_that_bound_the_original_before_the_plugin_gets_the_patched_function(monkeypatch):
    """E.g. VERL_USE_EXTERNAL_PLUGINS=none: the plugin loads late, after engine_workers imported ppo_loss."""
    from verl.workers import engine_workers
    from verl.workers.utils import losses

    patched = losses.ppo_loss
    monkeypatch.setattr(engine_workers, "ppo_loss", patched.__wrapped__)
    bf.apply()
    assert engine_workers.ppo_loss is patched


@pytest.mark.parametrize("patch", bf.PATCHES, ids=lambda p: p.name)
def test_patch_refuses_a_changed_verl_function(patch, monkeypatch):
    owner, name = _owner_and_name(patch)

    def changed(*args, **kwargs):  # verl rewrote the function: different source
        return None

    monkeypatch.setattr(owner, name, changed)
    with pytest.raises(PatchError, match="not the code it was written for"):
        patch.apply()


@pytest.mark.parametrize("patch", bf.PATCHES, ids=lambda p: p.name)
def test_patch_refuses_another_verl_version(patch, monkeypatch):
    from asympo_plugin import patching

    owner, name = _owner_and_name(patch)
    monkeypatch.setattr(owner, name, getattr(owner, name).__wrapped__)  # verl's original
    monkeypatch.setattr(patching, "installed_version", lambda dist: "0.9.2")
    with pytest.raises(PatchError, match="written for verl ==0.9.1"):
        patch.apply()


def test_patches_load_with_verl_in_a_fresh_process():
    """What a Ray worker does: import verl (the entry point loads the plugin), then verl's own modules."""
    code = (
        "import verl\n"
        "from verl.workers.engine_workers import ppo_loss\n"
        "from verl.experimental.one_step_off_policy.ray_trainer import OneStepOffRayTrainer as T\n"
        "import verl.experimental.fully_async_policy.fully_async_rollouter\n"
        "from asympo_plugin.verl import behavior_free as bf\n"
        "assert bf.is_patched(ppo_loss) and bf.is_patched(T._fit_compute_log_prob), 'not patched'\n"
        "print(sorted(k for k, v in bf.applied().items() if v))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "fully_async_rollout_without_log_probs" in out.stdout and "ppo_loss_without_old_log_probs" in out.stdout


@pytest.mark.parametrize("patch", bf.PATCHES, ids=lambda p: p.name)
def test_each_diff_applies_to_the_pinned_verl(patch, tmp_path):
    """patches/<name>.diff is reviewable against verl 0.9.1 (``patch -p1`` in site-packages)."""

    diff = REPO / "patches" / f"{patch.name}.diff"
    site = Path(verl.__file__).parents[1]
    assert_diff_applies(diff, site, tmp_path)


def test_every_patch_has_a_diff_and_a_readme_entry():
    readme = (REPO / "patches" / "README.md").read_text()
    for patch in bf.PATCHES:
        assert (REPO / "patches" / f"{patch.name}.diff").exists()
        assert f"`{patch.name}`" in readme
        assert patch.why


# ------------------------------------------------------------------------- the old-log-prob stage (driver)


def trainer_config(loss: str, bypass: bool = False, calculate_log_probs: bool = False):
    return OmegaConf.create(
        {
            "actor_rollout_ref": {
                "actor": {
                    "policy_loss": {"loss_mode": loss},
                    "loss_agg_mode": "seq-mean-token-mean",
                    "loss_scale_factor": None,
                    "calculate_sum_pi_squared": False,
                    "strategy": "fsdp2",
                },
                "rollout": {"calculate_log_probs": calculate_log_probs, "temperature": 1.0},
            },
            "algorithm": {"rollout_correction": {"bypass_mode": bypass, "loss_type": "ppo_clip"}},
        }
    )


class ActorCalled(Exception):
    """The stage reached the actor worker group (what a behavior-free loss must never do)."""


class RecordingWorkerGroup:
    """Stands in for the actor worker group: records, then stops the stage at the first remote call."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, method):
        def remote(*args, **kwargs):
            self.calls.append(method)
            raise ActorCalled(method)

        return remote


def rollout_batch(bs=4, prompt_len=3, resp_len=5):
    """A one-step-off batch as the agent loop returns it (DataProto, left/right padded)."""
    from verl import DataProto

    g = torch.Generator().manual_seed(0)
    resp_lens = torch.tensor([5, 3, 1, 4])[:bs]
    response_mask = (torch.arange(resp_len)[None] < resp_lens[:, None]).long()
    attention_mask = torch.cat([torch.ones(bs, prompt_len, dtype=torch.long), response_mask], dim=1)
    return DataProto.from_dict(
        {
            "prompts": torch.randint(1, 50, (bs, prompt_len), generator=g),
            "responses": torch.randint(1, 50, (bs, resp_len), generator=g),
            "input_ids": torch.randint(1, 50, (bs, prompt_len + resp_len), generator=g),
            "attention_mask": attention_mask,
            "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0),
            "response_mask": response_mask,
            "rollout_log_probs": -torch.rand(bs, resp_len, generator=g),
        }
    )


def one_step_off_trainer(config):
    from verl.experimental.one_step_off_policy.ray_trainer import OneStepOffRayTrainer

    trainer = object.__new__(OneStepOffRayTrainer)  # the real class; its __init__ needs Ray and a model
    trainer.config, trainer.metrics, trainer.timing_raw = config, {}, {}
    trainer.actor_rollout_wg = RecordingWorkerGroup()
    return trainer


@pytest.mark.parametrize("loss", BEHAVIOR_FREE)
@pytest.mark.parametrize("bypass", [False, True])
def test_one_step_off_stage_skips_the_actor_for_a_behavior_free_loss(loss, bypass):
    config = trainer_config(loss, bypass=bypass, calculate_log_probs=bypass)
    trainer = one_step_off_trainer(config)
    batch = rollout_batch()
    out = trainer._fit_compute_log_prob(batch)
    assert out is batch and "old_log_probs" not in out.batch
    assert trainer.actor_rollout_wg.calls == []
    assert trainer.metrics[bf.SKIPPED_METRIC] == 1.0
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == loss  # bypass would have rewritten it


def test_one_step_off_stage_recomputes_with_the_actor_for_ppo_clip():
    trainer = one_step_off_trainer(trainer_config("vanilla", bypass=False))
    with pytest.raises(ActorCalled, match="compute_log_prob"):
        trainer._fit_compute_log_prob(rollout_batch())
    assert bf.SKIPPED_METRIC not in trainer.metrics


def test_one_step_off_stage_copies_rollout_log_probs_for_ppo_clip_bypass():
    config = trainer_config("vanilla", bypass=True, calculate_log_probs=True)
    trainer = one_step_off_trainer(config)
    batch = rollout_batch()
    out = trainer._fit_compute_log_prob(batch)
    assert torch.equal(out.batch["old_log_probs"], batch.batch["rollout_log_probs"])
    assert trainer.actor_rollout_wg.calls == []
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "bypass_mode"  # stock verl rewrites it


def v1_trainer(cls_name, config):
    import verl.trainer.ppo.v1 as v1

    trainer = object.__new__(getattr(v1, cls_name))
    trainer.config = config
    trainer.actor_rollout_wg = RecordingWorkerGroup()
    trainer.local_trigger_step = 1  # separate_async: a mini-batch after the first (save/restore path)
    return trainer


def kv_batch():
    from transfer_queue.metadata import KVBatchMeta

    return KVBatchMeta(keys=["a", "b"], tags=[{}, {}], partition_id="train")


@pytest.mark.parametrize("cls_name", ["PPOTrainerSync", "PPOTrainerColocateAsync", "PPOTrainerSeparateAsync"])
def test_v1_stage_skips_the_actor_for_a_behavior_free_loss(cls_name):
    trainer = v1_trainer(cls_name, trainer_config("asympo"))
    batch, metrics = kv_batch(), {}
    assert trainer._compute_old_log_prob(batch, metrics) is batch
    assert trainer.actor_rollout_wg.calls == [] and metrics[bf.SKIPPED_METRIC] == 1.0


@pytest.mark.parametrize(
    ("cls_name", "first_call"),
    [("PPOTrainerSync", "compute_log_prob"), ("PPOTrainerSeparateAsync", "save_model_to_cpu")],
)
def test_v1_stage_calls_the_actor_for_ppo_clip(cls_name, first_call):
    trainer = v1_trainer(cls_name, trainer_config("vanilla"))
    with pytest.raises(ActorCalled, match=first_call):
        trainer._compute_old_log_prob(kv_batch(), {})


def fully_async_rollouter(config):
    from verl.experimental.fully_async_policy.fully_async_rollouter import FullyAsyncRollouter

    rollouter = object.__new__(FullyAsyncRollouter.__ray_metadata__.modified_class)  # what Ray instantiates
    rollouter.config = config
    return rollouter


def test_fully_async_rollouter_runs_without_rollout_log_probs_only_for_behavior_free():
    for loss in BEHAVIOR_FREE:
        config = trainer_config(loss)
        config.async_training = {"staleness_threshold": 1}
        fully_async_rollouter(config)._validate_config()
    config = trainer_config("vanilla")
    config.async_training = {"staleness_threshold": 1}
    with pytest.raises(AssertionError, match="must rollout calculate log_probs"):
        fully_async_rollouter(config)._validate_config()
    with pytest.raises(ValueError, match="Missing async_training"):
        fully_async_rollouter(trainer_config("asympo"))._validate_config()


# ------------------------------------------------------------------------------ ppo_loss (actor worker)


def actor_cfg(loss: str):
    from verl.workers.config import FSDPActorConfig

    from asympo_plugin.verl.config import AsympoPolicyLossConfig

    return FSDPActorConfig(
        strategy="fsdp2",
        ppo_mini_batch_size=4,
        ppo_micro_batch_size_per_gpu=4,
        rollout_n=1,
        policy_loss=AsympoPolicyLossConfig(loss_mode=loss),
        loss_agg_mode="seq-mean-token-mean",
    )


def engine_batch(with_old_log_probs: bool, seed: int = 0):
    """(data, model_output) as verl's engine hands them to ppo_loss, built with verl's own padding code."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import left_right_2_no_padding

    batch = rollout_batch()
    td = batch.to_tensordict()
    g = torch.Generator().manual_seed(seed)
    mask = td["response_mask"]
    td["advantages"] = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * mask
    if with_old_log_probs:
        td["old_log_probs"] = td["rollout_log_probs"]
    td = left_right_2_no_padding(td.exclude("rollout_log_probs"))
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=mask.shape[0])
    offsets = td["input_ids"].offsets()
    nnz = int(offsets[-1])
    log_probs = (-torch.rand(nnz, generator=g) * 2 - 0.05).requires_grad_()
    entropy = torch.rand(nnz, generator=g)
    output = {
        "log_probs": torch.nested.nested_tensor_from_jagged(log_probs, offsets=offsets),
        "entropy": torch.nested.nested_tensor_from_jagged(entropy, offsets=offsets),
    }
    return td, output, log_probs


@pytest.mark.parametrize("loss", BEHAVIOR_FREE)
def test_ppo_loss_trains_a_behavior_free_loss_without_old_log_probs(loss):
    from verl.workers.utils.losses import ppo_loss

    data, output, leaf = engine_batch(with_old_log_probs=False)
    value, metrics = ppo_loss(actor_cfg(loss), output, data)
    value.backward()
    assert torch.isfinite(value) and leaf.grad.abs().sum() > 0
    # the update forward's entropy, under its own name (verl's actor/entropy comes from the skipped pass)
    assert "actor/entropy" not in metrics
    assert metrics["actor/entropy_update_forward"].aggregate() > 0

    data_old, output_old, leaf_old = engine_batch(with_old_log_probs=True)  # same numbers, old ones present
    value_old, metrics_old = ppo_loss(actor_cfg(loss), output_old, data_old)
    value_old.backward()
    assert torch.equal(value, value_old) and torch.equal(leaf.grad, leaf_old.grad)  # old_log_probs never read
    assert "actor/entropy_update_forward" not in metrics_old  # with an old-log-prob pass, verl logs actor/entropy


def test_ppo_loss_for_ppo_clip_is_stock_verl():
    from verl.workers.utils.losses import ppo_loss

    stock = ppo_loss.__wrapped__
    data, output, _ = engine_batch(with_old_log_probs=True)
    value, metrics = ppo_loss(actor_cfg("vanilla"), output, data)
    data, output, _ = engine_batch(with_old_log_probs=True)
    value_stock, metrics_stock = stock(actor_cfg("vanilla"), output, data)
    assert torch.equal(value, value_stock) and metrics.keys() == metrics_stock.keys()

    data, output, _ = engine_batch(with_old_log_probs=False)
    with pytest.raises(KeyError, match="old_log_probs"):
        ppo_loss(actor_cfg("vanilla"), output, data)
    data, output, _ = engine_batch(with_old_log_probs=False)
    with pytest.raises(KeyError, match="old_log_probs"):
        stock(actor_cfg("vanilla"), output, data)


def test_patched_ppo_loss_is_verl_source_plus_the_diff():
    """What runs is verl's ppo_loss with exactly the hunks of patches/ppo_loss_without_old_log_probs.diff."""
    import inspect

    from verl.workers.utils.losses import ppo_loss

    diff = (REPO / "patches" / "ppo_loss_without_old_log_probs.diff").read_text()
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    edited = "".join(new for _, new in bf.PPO_LOSS_EDITS)
    for line in added:
        assert line in edited
    import linecache
    import textwrap

    running = "".join(linecache.getlines(ppo_loss.__code__.co_filename))  # the source that was compiled
    expected = textwrap.dedent(inspect.getsource(ppo_loss.__wrapped__))
    for old, new in bf.PPO_LOSS_EDITS:
        expected = expected.replace(old, new)
    assert running == expected


# -------------------------------------------------------------------------------- configure (driver)


def composed(loss: str, pipeline: str = "one-step-off", *overrides: str):
    from asympo_plugin.verl import launcher

    p = launcher.PIPELINES[pipeline]
    cfg = launcher.compose(launcher.config_dir(p), p.config_name, list(overrides))
    settings.apply_loss(settings.Editor(cfg, ()), loss)
    return cfg


def configure(cfg):
    """The behavior-free step of asympo-train's settings (no explicit user keys)."""
    loss = cfg.actor_rollout_ref.actor.policy_loss.loss_mode
    settings.apply_behavior_free(settings.Editor(cfg, ()), loss, "one-step-off")


@pytest.mark.parametrize("pipeline", ["one-step-off", "fully-async", "sync"])
def test_configure_turns_off_behavior_log_probs_for_asympo(pipeline):
    cfg = composed("asympo", pipeline)
    configure(cfg)
    configure(cfg)  # idempotent
    ref = cfg.actor_rollout_ref
    assert ref.rollout.calculate_log_probs is False
    assert cfg.algorithm.rollout_correction.bypass_mode is False
    assert ref.actor.calculate_entropy is True
    assert ref.actor.get("use_rollout_log_probs", False) is False


@pytest.mark.parametrize("pipeline", ["one-step-off", "fully-async"])
def test_configure_leaves_ppo_clip_as_stock(pipeline):
    cfg = composed("vanilla", pipeline)
    before = OmegaConf.to_container(cfg)
    configure(cfg)
    assert OmegaConf.to_container(cfg) == before
    assert cfg.actor_rollout_ref.rollout.calculate_log_probs is True  # the async pipelines' bypass default


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("algorithm.use_kl_in_reward=true", "use_kl_loss"),
        ("algorithm.rollout_correction.rollout_is=token", "rollout_is=null"),
        ("algorithm.rollout_correction.rollout_rs=token_k1", "rollout_rs=null"),
        ("algorithm.adv_estimator=optimal_token_baseline", "grpo"),
    ],
)
def test_configure_refuses_settings_that_read_behavior_log_probs(override, match):
    cfg = composed("asympo", "one-step-off", override)
    with pytest.raises(settings.SettingsError, match=match):
        configure(cfg)
    configure(composed("vanilla", "one-step-off", override))  # stock: verl decides


# ---------------------------------------------------------------- Megatron context parallelism (CP=2)


@pytest.fixture
def mcore_util(monkeypatch):
    """verl/models/mcore/util.py with megatron.core's parallel state stubbed to an emulated CP group.

    megatron-core needs CUDA to run, but verl's CP split (preprocess_thd_engine) and gather
    (postprocess_thd_engine) are plain torch; only the rank/size queries and all_gather are faked.
    """

    cp = types.SimpleNamespace(rank=0, size=2, local_outputs={})
    ps = types.ModuleType("megatron.core.parallel_state")
    ps.get_context_parallel_world_size = lambda: cp.size
    ps.get_context_parallel_rank = lambda: cp.rank
    ps.get_context_parallel_group = lambda: "cp"
    ps.get_tensor_model_parallel_world_size = lambda: 1
    packed = types.ModuleType("megatron.core.packed_seq_params")

    @dataclasses.dataclass
    class PackedSeqParams:
        qkv_format: str = "thd"
        cu_seqlens_q: torch.Tensor = None
        max_seqlen_q: int = 0
        cu_seqlens_kv: torch.Tensor = None
        max_seqlen_kv: int = 0
        cu_seqlens_q_padded: torch.Tensor = None
        cu_seqlens_kv_padded: torch.Tensor = None

    packed.PackedSeqParams = PackedSeqParams
    core = types.ModuleType("megatron.core")
    core.parallel_state = ps
    megatron = types.ModuleType("megatron")
    megatron.core = core
    for name, module in {
        "megatron": megatron,
        "megatron.core": core,
        "megatron.core.parallel_state": ps,
        "megatron.core.packed_seq_params": packed,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    path = Path(verl.__file__).parent / "models" / "mcore" / "util.py"
    spec = importlib.util.spec_from_file_location("_verl_mcore_util_emulated_cp", path)
    util = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(util)

    def all_gather(out_list, tensor, group=None):  # every rank's local output, as NCCL would deliver it
        for j, out in enumerate(out_list):
            out.copy_(cp.local_outputs[j].detach().view_as(tensor))

    monkeypatch.setattr(torch.distributed, "all_gather", all_gather)
    return util, cp


@pytest.mark.parametrize("loss", ["asympo", "spo"])
def test_megatron_cp_gives_the_loss_complete_responses(mcore_util, loss):
    """CP=2 (zigzag THD): every rank's loss equals CP=1's, and the ranks' gradients sum to CP=1's."""
    from verl.workers.utils.losses import ppo_loss

    util, cp = mcore_util
    data, _, _ = engine_batch(with_old_log_probs=False)
    input_ids = data["input_ids"]
    vocab_logit = torch.randn(64, generator=torch.Generator().manual_seed(1))

    def model(tokens, weight):  # per-token log-prob from a parameter: a stand-in for the LM head output
        return -torch.nn.functional.softplus(weight[tokens]) - 0.01

    weight_ref = vocab_logit.clone().requires_grad_()
    flat_ref = torch.nested.nested_tensor_from_jagged(model(input_ids.values(), weight_ref), input_ids.offsets())
    ref_loss, ref_metrics = ppo_loss(actor_cfg(loss), {"log_probs": flat_ref}, data)
    ref_loss.backward()

    for rank in range(cp.size):  # what each rank computes locally, before the gather
        cp.rank = rank
        local_ids, _, _ = util.preprocess_thd_engine(input_ids, pre_process=True)
        cp.local_outputs[rank] = model(local_ids[0], vocab_logit)

    grad_sum = torch.zeros_like(vocab_logit)
    for rank in range(cp.size):
        cp.rank = rank
        weight = vocab_logit.clone().requires_grad_()
        local_ids, packed, _ = util.preprocess_thd_engine(input_ids, pre_process=True)
        local_log_probs = model(local_ids[0], weight).unsqueeze(0)
        assert local_log_probs.shape[1] < input_ids.values().shape[0]  # each rank holds a part
        log_probs = util.postprocess_thd_engine(local_log_probs, packed, input_ids, input_ids.shape[0])
        loss_value, metrics = ppo_loss(actor_cfg(loss), {"log_probs": log_probs}, data)
        torch.testing.assert_close(loss_value, ref_loss)
        assert metrics["actor/scale/neg_nll"].aggregate() == pytest.approx(
            ref_metrics["actor/scale/neg_nll"].aggregate()
        )
        loss_value.backward()
        grad_sum += weight.grad
    torch.testing.assert_close(grad_sum, weight_ref.grad)


def test_megatron_cp_is_allowed_by_configure():
    from asympo_plugin.verl import launcher

    p = launcher.PIPELINES["one-step-off"]
    cfg = launcher.compose(
        launcher.config_dir(p),
        "one_step_off_ppo_megatron_trainer",
        ["actor_rollout_ref.actor.megatron.context_parallel_size=2"],
    )
    settings.apply_loss(settings.Editor(cfg, ()), "asympo")
    configure(cfg)  # no refusal: the loss sees complete responses under CP (see behavior_free's docstring)
    assert cfg.actor_rollout_ref.actor.megatron.context_parallel_size == 2
