"""The OpenRLHF this adapter supports, and the one check of it (``importlib.metadata``).

OpenRLHF 0.11.2 does not set ``openrlhf.__version__``; the installed distribution's metadata is the truth.
Every patch of the adapter is written against this release's source (and checks its sha256 too).
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet

from ..patching import installed_version

DISTRIBUTION = "openrlhf"
SUPPORTED = "0.11.2"
VERSIONS = SpecifierSet(f"=={SUPPORTED}")
INSTALL_HINT = (
    f"pip install --no-deps {DISTRIBUTION}=={SUPPORTED} (its requirements without flash-attn: "
    "scripts/setup_openrlhf_env.sh sets up the whole environment)"
)


class OpenRLHFVersionError(RuntimeError):
    """The installed OpenRLHF is not the release this adapter was written for."""


def check_openrlhf() -> str:
    """The installed OpenRLHF version, or :class:`OpenRLHFVersionError` naming the release to install."""
    version = installed_version(DISTRIBUTION)
    if version is None:
        raise OpenRLHFVersionError(
            f"asympo-openrlhf needs OpenRLHF {SUPPORTED}, which is not installed: {INSTALL_HINT}."
        )
    if version not in VERSIONS:
        raise OpenRLHFVersionError(
            f"asympo-openrlhf supports OpenRLHF {SUPPORTED} only (its patches hash that release's source), found "
            f"{version}: {INSTALL_HINT}."
        )
    return version
