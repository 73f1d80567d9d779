"""Make protoc's ``.pyi`` message stubs pass ``mypy --strict``.

protoc's ``--pyi_out`` types a message field's constructor argument as
``_Union[Message, _Mapping]``: the message, or a dict of its fields. The bare
``_Mapping`` is a generic without arguments, which ``mypy --strict``
(``disallow_any_generics``) rejects in every file that has a message field.
What protoc means is a mapping from field names to values, so it becomes
``_Mapping[str, _Any]``; nothing else in the file changes.
"""

from __future__ import annotations

import re
from pathlib import Path

# protoc writes ``from collections.abc import ... Mapping as _Mapping`` and uses the
# bare alias only as the last member of a ``_Union[...]``.
_BARE_MAPPING = re.compile(r"(?<=, )_Mapping(?=\])")
_ANY_IMPORT = "from typing import Any as _Any\n"


def fix_pyi(text: str) -> str:
    """``text`` with protoc's bare ``_Mapping`` given its arguments (idempotent)."""
    fixed, count = _BARE_MAPPING.subn("_Mapping[str, _Any]", text)
    if count == 0 or _ANY_IMPORT in fixed:
        return fixed
    # After the last top-level import line: protoc's imports all come first.
    lines = fixed.splitlines(keepends=True)
    last_import = max(i for i, line in enumerate(lines) if line.startswith(("import ", "from ")))
    lines.insert(last_import + 1, _ANY_IMPORT)
    return "".join(lines)


def fix_pyi_file(path: Path) -> None:
    text = path.read_text()
    fixed = fix_pyi(text)
    if fixed != text:
        path.write_text(fixed)
