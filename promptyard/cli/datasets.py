"""`promptyard datasets list`: evaluation datasets under datasets/ (JSONL + card)."""

from __future__ import annotations

import click

from promptyard.cli.common import emit

__all__ = ["datasets"]


@click.group()
def datasets() -> None:
    """Evaluation datasets under datasets/ (JSONL + card)."""


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True)
def datasets_list(as_json: bool) -> None:
    """List datasets with their fields, labels and split sizes.

    \b
    Example:
      promptyard datasets list
    """
    from promptyard.evaluation import list_datasets, load_card

    cards = [load_card(name) for name in list_datasets()]
    emit([c.__dict__ for c in cards], as_json)
    if not as_json:
        for c in cards:
            click.echo(f"{c.name:<22} inputs {','.join(c.input_fields):<10} label {c.label_field:<8} "
                       f"metric {c.metric:<12} test {c.test_size} validation {c.validation_size}")
