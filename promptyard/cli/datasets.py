"""`promptyard datasets list | from-traces | from-mlflow`: evaluation datasets (JSONL + card), and
datasets harvested from MLflow traces with assessments or MLflow evaluation datasets."""

from __future__ import annotations

from pathlib import Path

import click

from promptyard.cli.common import emit, open_registry
from promptyard.errors import UserError
from promptyard.runtime import get_settings

__all__ = ["datasets"]


@click.group()
def datasets() -> None:
    """Evaluation datasets under datasets/ (JSONL + card), and harvests from MLflow."""


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


def _harvest_options(command):
    for option in reversed([
        click.option("--input", "inputs", multiple=True, help="Input field to keep (repeatable). Default: every "
                     "text or number input of the first labelled row."),
        click.option("--label-field", default="label", show_default=True, help="Name of the label column written."),
        click.option("--labels", help="The label set, comma-separated (rows with other labels are skipped). "
                     "Default: the labels found, when there are at most 50."),
        click.option("--metric", default="exact_label", show_default=True, help="The card's metric."),
        click.option("--test", type=int, help="Test split size (default 30% of the rows)."),
        click.option("--validation", type=int, help="Validation split size (default 20% of the rows)."),
        click.option("--seed", default=13, show_default=True, help="Seed of the deterministic splits."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder to write. Default: datasets/NAME, so --dataset NAME finds it."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON only."),
    ]):
        command = option(command)
    return command


def _checked(name: str, label: str, test, validation, labels: str | None, metric: str) -> list[str] | None:
    """Every option checked before MLflow is contacted; the label set, parsed."""
    from promptyard.evaluation import get_metric
    from promptyard.evaluation.sources import check_name

    check_name(name)
    if not label.strip():
        raise UserError("--label is empty: give the name of the assessment (or expectation) that holds the label.")
    for option, value in (("--test", test), ("--validation", validation)):
        if value is not None and value < 1:
            raise UserError(f"{option} {value} is not valid: give a split size of 1 or more, or leave it out.")
    label_set = [x.strip() for x in labels.split(",") if x.strip()] if labels is not None else None
    if labels is not None and not label_set:
        raise UserError("--labels is empty: give the labels comma-separated, e.g. --labels positive,negative.")
    get_metric(metric, label_set or [])  # an unknown metric fails here
    return label_set


def _report(snapshot, as_json: bool) -> None:
    skipped = sum(snapshot.skipped.values())
    emit({"folder": str(snapshot.folder), "version": snapshot.version, "snapshot": str(snapshot.file),
          "digest": snapshot.digest, "rows": snapshot.rows, "seen": snapshot.seen, "skipped": snapshot.skipped,
          "labels": snapshot.labels, "new": snapshot.new}, as_json,
         f"wrote {snapshot.rows} rows to {snapshot.folder} (snapshot v{snapshot.version}"
         + ("" if snapshot.new else ", unchanged") + f"); skipped {skipped} of {snapshot.seen}"
         + "".join(f"\n  {n:>5}  {why}" for why, n in sorted(snapshot.skipped.items(), key=lambda x: -x[1]))
         + (f"\nlabels: {', '.join(snapshot.labels)}" if snapshot.labels else "\nno label set (free-text answers)"))


@datasets.command("from-traces")
@click.argument("name")
@click.option("--experiment", required=True, help="MLflow experiment (name or id) the app logs its traces to.")
@click.option("--label", required=True, help="Name of the assessment that holds the label (by a person or code).")
@click.option("--filter", "filter_string", help="MLflow trace filter, e.g. \"tags.env = 'prod'\".")
@click.option("--max-traces", default=10_000, show_default=True, type=click.IntRange(1))
@_harvest_options
def from_traces(name, experiment, label, filter_string, max_traces, inputs, label_field, labels, metric, test,
                validation, seed, out, as_json) -> None:
    """Build dataset NAME from an app's MLflow traces: the root span's inputs, labelled by the newest
    assessment LABEL a person or code gave (an LLM judge's is not a label). Rows without a label are
    skipped and counted; the rows are also kept as a numbered snapshot.

    \b
    Example:
      promptyard datasets from-traces tickets --experiment support-app --label intent
      promptyard optimize support@production --dataset tickets
    """
    from promptyard.evaluation import from_traces as harvest
    from promptyard.evaluation.data import datasets_dir

    label_set = _checked(name, label, test, validation, labels, metric)
    open_registry()  # MLflow answers, or one clear message
    _report(harvest(get_settings().tracking_uri, out or datasets_dir() / name, name=name, experiment=experiment,
                    label=label, input_fields=list(inputs) or None, label_field=label_field, labels=label_set,
                    metric=metric, filter_string=filter_string, max_traces=max_traces, test=test,
                    validation=validation, seed=seed), as_json)


@datasets.command("from-mlflow")
@click.argument("name")
@click.option("--dataset", "source", required=True, help="MLflow evaluation dataset: its name or id (d-...).")
@click.option("--label", required=True, help="Name of the expectation that holds the label.")
@_harvest_options
def from_mlflow(name, source, label, inputs, label_field, labels, metric, test, validation, seed, out,
                as_json) -> None:
    """Build dataset NAME from an MLflow evaluation dataset (MLflow's Datasets page): each record's
    inputs and its expectation LABEL. Records without it are skipped and counted.

    \b
    Example:
      promptyard datasets from-mlflow reviews --dataset reviews_eval --label expected_sentiment
    """
    from promptyard.evaluation import from_evaluation_dataset
    from promptyard.evaluation.data import datasets_dir

    label_set = _checked(name, label, test, validation, labels, metric)
    open_registry()  # MLflow answers, or one clear message
    _report(from_evaluation_dataset(get_settings().tracking_uri, out or datasets_dir() / name, name=name,
                                    dataset=source, label=label, input_fields=list(inputs) or None,
                                    label_field=label_field, labels=label_set, metric=metric, test=test,
                                    validation=validation, seed=seed), as_json)
