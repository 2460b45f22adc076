"""Model cards: a Markdown file whose ``## Heading`` sections are the card's fields.

Known headings (Task, Intended use, Training data, Metrics, Licence) map to fixed keys;
others are kept under their own name. The whole text is kept too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tierml.core.errors import RegistryInputError

FIELDS = {
    "task": "task",
    "intended use": "intended_use",
    "training data": "training_data",
    "metrics": "metrics",
    "licence": "licence",
    "license": "licence",
}
_HEADING = re.compile(r"^##\s+(.+?)\s*$")


def read_card(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryInputError(
            f"Model card '{path}' cannot be read: {exc}.",
            hint="Pass a UTF-8 Markdown file with ## Task, ## Intended use, … sections.",
        ) from exc
    return parse_card(text)


def parse_card(text: str) -> dict[str, Any]:
    card: dict[str, Any] = {"text": text}
    key: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if key is not None:
            card[key] = "\n".join(lines).strip()

    for line in text.splitlines():
        m = _HEADING.match(line)
        if m:
            flush()
            heading = m.group(1).strip().lower()
            key, lines = FIELDS.get(heading, heading.replace(" ", "_")), []
        elif key is not None:
            lines.append(line)
    flush()
    return card
