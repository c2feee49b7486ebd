"""Small builders shared by tests."""

from __future__ import annotations

import json
from pathlib import Path

SEED_TEMPLATE = "Classify the sentiment of the review as positive or negative.\n\nReview: {{text}}"


def write_dataset(folder: Path, rows: list[dict], *, test: int = 40, validation: int = 20, labels=("positive", "negative"),
                  label_field: str = "label") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "README.md").write_text(
        "---\n"
        f"name: {folder.name}\ninput_fields: [text]\nlabel_field: {label_field}\n"
        f"labels: [{', '.join(labels)}]\nmetric: exact_label\n"
        f"splits: {{seed: 7, test: {test}, validation: {validation}}}\n"
        "source: generated in tests\nlicense: CC0-1.0\n---\n# tiny\n"
    )
    return folder


def tiny_rows(n: int = 100) -> list[dict]:
    return [{"text": f"The film was {'good' if i % 2 else 'bad'}, take {i}.", "label": "positive" if i % 2 else "negative"}
            for i in range(n)]


def length_metric(reply: str, gold: str) -> float:
    """A user metric for tests, loaded by dotted path."""
    return float(len(reply))


def broken_metric(reply: str, gold: str) -> float:
    raise ValueError("this metric is broken")


def governed(registry, user: str = "tester"):
    """Registry writes as a test sets them up: through governance, like every write."""
    from promptyard.governance import Governance

    return Governance.from_settings(registry, user=user)


def free_port() -> int:
    """A loopback port nothing listens on (for a server a test starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
