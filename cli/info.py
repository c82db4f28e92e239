"""``kerastl backbones``: what can be finetuned."""

import click

from kerastl.backbones import REGISTRY, describe
from kerastl_cli.main import cli
from kerastl_cli.output import print_table


@cli.command()
def backbones() -> None:
    """List the registered backbones with parameters, sizes and preprocessing."""
    rows = [describe(spec) for spec in REGISTRY.values()]
    for row in rows:
        row["params"] = f"{row['params'] / 1e6:.2f}M"
        row["imagenet"] = "yes" if row["imagenet"] else "no (pretrain it)"
    print_table(rows)
    click.echo("\nSizes in pixels; parameters without the classification top.")
