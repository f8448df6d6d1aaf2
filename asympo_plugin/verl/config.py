"""verl's ``PolicyLossConfig`` plus the plugin's loss fields (``asympo_plugin.core.fields``).

verl's ``PolicyLossConfig`` is a strict dataclass, so the extra fields live on a subclass that is
selected with ``actor_rollout_ref.actor.policy_loss._target_`` (``asympo-train`` sets it for you).
Names, defaults and the one check of each field are the core's; here they only get verl's spelling
(``actor_rollout_ref.actor.policy_loss.<field>``) in the error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from verl.workers.config import PolicyLossConfig

from ..core import fields as core_fields

CONFIG_PATH = "actor_rollout_ref.actor.policy_loss"
AGG_MODE_PATH = "actor_rollout_ref.actor.loss_agg_mode"


def where(field: str) -> str:
    """How a verl user spells a loss field."""
    return f"{CONFIG_PATH}.{field}"


@dataclass
class AsympoPolicyLossConfig(PolicyLossConfig):
    """verl's PolicyLossConfig with the ASymPO/SPO fields (see ``asympo_plugin.core.fields``)."""

    asympo_eps: float = core_fields.ASYMPO_EPS_DEFAULT
    spo_neg_scale: float = core_fields.SPO_NEG_SCALE_DEFAULT
    asympo_allow_unbalanced_agg: bool = False

    def __post_init__(self):
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        core_fields.check_asympo_eps(self.asympo_eps, where("asympo_eps"))
        core_fields.check_spo_neg_scale(self.spo_neg_scale, where("spo_neg_scale"))


CONFIG_TARGET = f"{AsympoPolicyLossConfig.__module__}.{AsympoPolicyLossConfig.__qualname__}"
# The dataclass and the core declare the same fields with the same defaults (tested).
LOSS_FIELDS = {
    f.name: f.default
    for f in fields(AsympoPolicyLossConfig)
    if f.name not in {g.name for g in fields(PolicyLossConfig)}
}
