"""The README's code blocks that tests run, each found by the marker comment above it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced block that follows ``<!-- marker: ... -->`` in README.md."""
    found = re.search(
        rf"<!-- {re.escape(marker)}:[^\n]*-->\n```[a-z]*\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert found, f"README.md: no code block after the {marker} marker"
    return found[1]
