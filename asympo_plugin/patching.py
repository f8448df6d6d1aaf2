"""How this plugin changes verl when verl's extension points do not suffice (the last resort).

A :class:`Patch` replaces one attribute of one verl module (a function, or a method as
``"Class.method"``). It is

* guarded: it applies only to the verl versions in ``verl_versions``, and only if the source of the
  attribute it replaces still hashes to ``source_sha256`` (the code it was written against);
  otherwise :class:`PatchError` says what changed and what to do;
* idempotent: applying it twice changes nothing (the replacement is marked with the patch name);
* reviewable: ``why`` says why verl needs it; ``patches/<name>.diff`` holds the same change as a
  diff against verl's source, for proposing upstream.

``python -m asympo_plugin.patching <module> <attr>`` prints the hash of verl's current source of an
attribute, for writing a new patch.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

MARK = "__asympo_patch__"


class PatchError(RuntimeError):
    """verl changed underneath a patch; the patch refuses to apply."""


def source_sha256(obj) -> str:
    return hashlib.sha256(inspect.getsource(inspect.unwrap(obj)).encode()).hexdigest()


def _plain(obj):
    return obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj


def _resolve(module: str, attr: str):
    owner = importlib.import_module(module)
    *parents, name = attr.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, name


@dataclass(frozen=True)
class Patch:
    name: str
    why: str
    module: str
    attr: str
    source_sha256: str
    make_replacement: Callable[[Callable], Callable]
    verl_versions: SpecifierSet = SpecifierSet("==0.9.1")

    def is_applied(self) -> bool:
        owner, name = _resolve(self.module, self.attr)
        return getattr(_plain(inspect.getattr_static(owner, name)), MARK, None) == self.name

    def apply(self) -> None:
        import verl

        owner, name = _resolve(self.module, self.attr)
        current = inspect.getattr_static(owner, name)
        original = _plain(current)
        if getattr(original, MARK, None) == self.name:
            return
        where = f"{self.module}.{self.attr}"
        if Version(verl.__version__) not in self.verl_versions:
            raise PatchError(
                f"asympo-plugin patch '{self.name}' was written for verl {self.verl_versions}, found "
                f"{verl.__version__}; it patches {where}. Install verl 0.9.1 or an asympo-plugin for your verl."
            )
        got = source_sha256(original)
        if got != self.source_sha256:
            raise PatchError(
                f"asympo-plugin patch '{self.name}': {where} is not the code it was written for "
                f"(source sha256 {got[:12]}, expected {self.source_sha256[:12]}). verl changed underneath it; "
                "reinstall the pinned verl (pip install 'verl[verl-core]==0.9.1') or update the patch."
            )
        replacement = self.make_replacement(original)
        setattr(replacement, MARK, self.name)
        replacement.__wrapped__ = original
        if isinstance(current, staticmethod):
            replacement = staticmethod(replacement)
        elif isinstance(current, classmethod):
            replacement = classmethod(replacement)
        setattr(owner, name, replacement)


if __name__ == "__main__":
    owner, attr = _resolve(sys.argv[1], sys.argv[2])
    print(source_sha256(getattr(owner, attr)))
