"""Source edits of OpenRLHF methods, written with the indentation they have in OpenRLHF's files.

``patching.edit_source`` recompiles a function from its dedented source, so an edit of a method (one
class level deep) must lose that level's four spaces; :func:`method_edits` does it, so the edit text
reads exactly like the lines of ``patches/<name>.diff``. (Methods using zero-argument ``super()`` cannot
be recompiled this way; those are wrapped instead.)
"""

from __future__ import annotations

INDENT = " " * 4


def _dedent_one_level(text: str) -> str:
    return "".join(line[len(INDENT) :] if line.startswith(INDENT) else line for line in text.splitlines(keepends=True))


def method_edits(edits: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(_dedent_one_level(old), _dedent_one_level(new)) for old, new in edits]
