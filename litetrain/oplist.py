"""The supported-op list in the README, generated from the op table.

``python -m litetrain.oplist`` rewrites the section of README.md between the two markers;
a test fails when the README and the table disagree.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from .ops import all_ops, lookup

START, END = "<!-- ops:start -->", "<!-- ops:end -->"


def markdown() -> str:
    names = sorted(all_ops())
    flex = [n for n in names if n.startswith("Flex")]
    builtin = [n.upper() for n in names if not n.startswith("Flex") and
               lookup(n).custom_code is None]
    custom = [n for n in names if n not in flex and lookup(n).custom_code is not None]

    def wrap(items: list[str]) -> str:
        return textwrap.fill(", ".join(f"`{i}`" for i in items), width=92)

    parts = [f"**{len(builtin)} builtin ops:** " + wrap(builtin),
             f"**{len(flex)} Flex (Select TF) ops:** " + wrap(flex)]
    if custom:
        parts.append(f"**{len(custom)} other custom ops:** " + wrap(custom))
    return "\n\n".join(parts)


def update(readme: Path) -> bool:
    """Rewrite the marked section of ``readme``; True if it changed."""
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{markdown()}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print(f"{path}: {'updated' if update(path) else 'already up to date'}")
