"""Plain-text tables for the terminal."""

from __future__ import annotations

from typing import Sequence

import click


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Print ``rows`` as an aligned table with a header."""
    if not rows:
        return
    columns = list(columns or rows[0].keys())
    cells = [[_format(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    click.echo("  ".join(col.ljust(w) for col, w in zip(columns, widths)))
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
