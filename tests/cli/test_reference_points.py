"""Reference points beside every comparison: `ab offline` shows the majority and random labels."""

import json

from click.testing import CliRunner
from helpers import SEED_TEMPLATE, governed

from promptyard.cli import cli
from promptyard.evaluation import load_dataset


def test_offline_ab_shows_the_majority_and_random_labels(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", SEED_TEMPLATE)  # the fake always answers "positive"
    governed(registry).register("sentiment", SEED_TEMPLATE.replace("Classify", "Read carefully and classify"))
    data = load_dataset(tiny_dataset)
    train = data.rows("train")
    majority = "positive" if sum(r["label"] == "positive" for r in train) >= len(train) / 2 else "negative"
    share = sum(r["label"] == majority for r in data.rows("test")) / 40
    out = CliRunner().invoke(cli, ["ab", "offline", "sentiment/1", "sentiment/2", "--dataset", str(tiny_dataset),
                                   "--json"], catch_exceptions=False)
    result = json.loads(out.stdout)
    assert result["reference"] == {"majority_label": majority, "majority": share, "random": 0.5, "labels": 2, "n": 40}
    a, b = result["versus_majority"]
    assert b["significant"] and (b["prompt"], b["losses"]) == (1.0, 0)
    assert a["prompt"] == 0.375 and not a["significant"]  # always "positive" is no better than the majority
    text = CliRunner().invoke(cli, ["ab", "offline", "sentiment/1", "sentiment/2", "--dataset", str(tiny_dataset)],
                              catch_exceptions=False).stdout.splitlines()
    assert f"reference points: majority label {majority!r} {share:.3f}, uniform random over 2 labels 0.500" in text
    assert any(line.startswith(f"sentiment/2 1.000 is significantly above always answering {majority!r}")
               for line in text)
