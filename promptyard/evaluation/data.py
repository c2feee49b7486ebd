"""Evaluation datasets: a folder under `datasets/` with `data.jsonl` and a card (`README.md`).

The card is a Hugging Face style README whose YAML front matter says which fields are inputs,
which is the label, the label set, the default metric and how to split (seed and sizes). Loading
goes through Hugging Face `datasets`; the splits are deterministic for a given seed and the digest
covers the data file and the split settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from promptyard.errors import DatasetError, TemplateError
from promptyard.evaluation.metric_catalog import get_metric
from promptyard.evaluation.metrics import Metric
from promptyard.registry import PromptTemplate, check_variables, template_text, variables
from promptyard.runtime import read_text

__all__ = ["DatasetCard", "LoadedDataset", "load_card", "load_dataset", "datasets_dir", "list_datasets",
           "dataset_digest"]

DATA_FILE = "data.jsonl"
CARD_FILE = "README.md"


def datasets_dir() -> Path:
    """The `datasets/` folder shipped next to the package."""
    return Path(__file__).resolve().parents[2] / "datasets"


@dataclass(frozen=True)
class DatasetCard:
    name: str
    input_fields: list[str]
    label_field: str
    labels: list[str] = field(default_factory=list)
    metric: str = "exact_label"
    metric_options: dict = field(default_factory=dict)
    seed: int = 13
    test_size: int = 200
    validation_size: int = 100
    source: str = ""
    license: str = ""

    def make_metric(self, budget=None) -> Metric:
        """The card's metric, with its options and the label set (a judge charges `budget`)."""
        return get_metric(self.metric, self.labels, budget=budget, **self.metric_options)


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset as plain data: its card, file, digest and the rows of each split (picklable)."""

    card: DatasetCard
    path: Path
    digest: str
    splits: dict[str, list[dict]]  # train / validation / test -> rows

    @property
    def fields(self) -> list[str]:
        return [*self.card.input_fields, self.card.label_field]

    def metric(self) -> Metric:
        """The card's default metric, with its options and the label set."""
        return self.card.make_metric()

    def check_template(self, template: PromptTemplate) -> None:
        """Raise unless the template (text or chat) reads only input fields, and never the label (the answer)."""
        text = template_text(template)
        if self.card.label_field in variables(text):
            raise TemplateError(
                f"The template shows the answer: {{{{{self.card.label_field}}}}} is the dataset's label field. "
                "Remove it from the template."
            )
        check_variables(text, self.card.input_fields, where=f"dataset {self.card.name!r} (its input fields)")

    def rows(self, split: str, limit: int | None = None) -> list[dict]:
        rows = self.splits[split]
        return list(rows if limit is None else rows[:limit])


def list_datasets(root: Path | None = None) -> list[str]:
    root = root or datasets_dir()
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file()) if root.is_dir() else []


def _resolve(ref: str | Path) -> Path:
    path = Path(ref)
    if path.is_dir():
        return path.resolve()
    candidate = datasets_dir() / str(ref)
    if candidate.is_dir():
        return candidate
    known = ", ".join(list_datasets()) or "none"
    if path.is_absolute() or len(path.parts) > 1 or str(ref).startswith((".", "~")):
        raise DatasetError(f"Dataset folder {str(ref)!r} does not exist: give a folder holding {DATA_FILE} and a "
                           f"{CARD_FILE} card, or one of the names under {datasets_dir()} ({known}).")
    raise DatasetError(
        f"Dataset {str(ref)!r} not found: it is neither a folder nor a name under {datasets_dir()} "
        f"(known: {known}). Create datasets/{ref}/ with {DATA_FILE} and a {CARD_FILE} card."
    )


def load_card(ref: str | Path) -> DatasetCard:
    folder = _resolve(ref)
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise DatasetError(f"Dataset card {card_path} is missing: add it with YAML front matter.")
    text = read_text(card_path, "dataset card")
    if not text.startswith("---"):
        raise DatasetError(f"Dataset card {card_path} has no YAML front matter (start it with ---).")
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(f"Dataset card {card_path} front matter is not valid YAML: {exc}") from exc
    for key in ("input_fields", "label_field"):
        if key not in meta:
            raise DatasetError(f"Dataset card {card_path} lacks '{key}': add it to the front matter.")
    splits = meta.get("splits", {})
    return DatasetCard(
        name=meta.get("name", folder.name),
        input_fields=list(meta["input_fields"]),
        label_field=meta["label_field"],
        labels=[str(label) for label in meta.get("labels", [])],
        metric=meta.get("metric", "exact_label"),
        metric_options=dict(meta.get("metric_options") or {}),
        seed=int(splits.get("seed", 13)),
        test_size=int(splits.get("test", 200)),
        validation_size=int(splits.get("validation", 100)),
        source=meta.get("source", ""),
        license=meta.get("license", ""),
    )


def _check_rows(path: Path, text: str, card: DatasetCard) -> int:
    count = 0
    needed = [*card.input_fields, card.label_field]
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno} is not valid JSON ({exc.msg}): fix that line.") from exc
        missing = [name for name in needed if name not in row]
        if missing:
            raise DatasetError(
                f"{path}:{lineno} lacks field(s) {', '.join(missing)} that the card names "
                f"(input_fields {card.input_fields}, label_field {card.label_field!r}): add them "
                "to every row or change the card."
            )
        count += 1
    return count


def load_dataset(ref: str | Path, *, cache_dir: Path | None = None) -> LoadedDataset:
    """Load a dataset folder into deterministic train/validation/test splits."""
    import datasets as hf  # heavy import, only when data is needed

    folder = _resolve(ref)
    card = load_card(folder)
    card.make_metric()  # an unknown or disallowed metric fails here, before anything is scored
    data_path = folder / DATA_FILE
    if not data_path.is_file():
        raise DatasetError(f"Data file {data_path} is missing: put the examples there, one JSON object per line.")
    raw = data_path.read_bytes()
    count = _check_rows(data_path, read_text(data_path, "data file"), card)
    needed = card.test_size + card.validation_size + 2
    if count == 0:
        raise DatasetError(f"Data file {data_path} is empty: add examples, one JSON object per line.")
    if count < needed:
        raise DatasetError(
            f"Dataset {card.name} has {count} examples but its card asks for test {card.test_size} + "
            f"validation {card.validation_size} + at least 2 for training: add examples or lower "
            "the split sizes in the card."
        )
    full = hf.load_dataset(
        "json", data_files=str(data_path), split="train", cache_dir=str(cache_dir) if cache_dir else None
    )
    first = full.train_test_split(test_size=card.test_size, seed=card.seed, shuffle=True)
    second = first["train"].train_test_split(test_size=card.validation_size, seed=card.seed, shuffle=True)
    splits = {"train": second["train"].to_list(), "validation": second["test"].to_list(),
              "test": first["test"].to_list()}
    return LoadedDataset(card=card, path=data_path, digest=_digest(raw, card), splits=splits)


def _digest(raw: bytes, card: DatasetCard) -> str:
    """Covers the data file and the split settings: the same digest means the same examples in each split."""
    digest = hashlib.sha256(raw)
    digest.update(f"{card.seed}/{card.test_size}/{card.validation_size}".encode())
    return digest.hexdigest()[:16]


def dataset_digest(ref: str | Path) -> str:
    """The current digest of a dataset (name or folder), without loading it."""
    folder = _resolve(ref)
    data_path = folder / DATA_FILE
    if not data_path.is_file():
        raise DatasetError(f"Data file {data_path} is missing: put the examples there, one JSON object per line.")
    return _digest(data_path.read_bytes(), load_card(folder))
