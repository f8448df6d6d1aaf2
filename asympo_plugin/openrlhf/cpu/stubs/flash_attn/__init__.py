"""CPU test support only: a stand-in for ``flash_attn`` so that ``import openrlhf.models`` works without CUDA.

OpenRLHF 0.11.2 imports five names from flash-attn at module top level (``models/ring_attn_utils.py:3-4``);
they run only with ``--ds.packing_samples`` or ring attention. Every name here raises if called. This
directory is put on ``sys.path`` only by ``asympo_plugin.openrlhf.cpu`` (never on a GPU run), and it has
no ``*.dist-info``, so transformers does not report flash-attn as available.
"""

__version__ = "0.0.0+asympo-cpu-stub"


def unavailable(name):
    def fn(*args, **kwargs):
        raise RuntimeError(
            f"flash_attn.{name} is the asympo-plugin CPU stub: packing and ring attention need the real flash-attn "
            "(a CUDA build). Run without --ds.packing_samples / --ds.ring_attn_size on CPU."
        )

    fn.__name__ = name
    return fn
