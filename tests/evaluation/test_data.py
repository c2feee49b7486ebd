import pytest
from helpers import tiny_rows, write_dataset

from promptyard.evaluation import list_datasets, load_card, load_dataset
from promptyard.errors import DatasetError


def test_shipped_datasets_have_cards():
    assert list_datasets() == ["gsm8k", "intent_recognition", "rotten_tomatoes"]
    card = load_card("intent_recognition")
    assert card.input_fields == ["text"] and card.label_field == "label" and len(card.labels) == 7
    assert card.license == "Apache-2.0" and "bigbench" in card.source


def test_splits_are_deterministic_and_disjoint(tiny_dataset):
    a, b = load_dataset(tiny_dataset), load_dataset(tiny_dataset)
    assert {k: len(v) for k, v in a.splits.items()} == {"train": 40, "validation": 20, "test": 40}
    assert a.digest == b.digest and len(a.digest) == 16
    for split in a.splits:
        assert a.rows(split) == b.rows(split)
    texts = [set(r["text"] for r in a.rows(s)) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert len(a.rows("train", limit=5)) == 5


def test_digest_changes_with_the_data(tmp_path):
    one = load_dataset(write_dataset(tmp_path / "one", tiny_rows()))
    two = load_dataset(write_dataset(tmp_path / "two", tiny_rows()[::-1]))
    assert one.digest != two.digest


def test_real_dataset_split_sizes():
    data = load_dataset("intent_recognition")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 343, "validation": 100, "test": 250}


def test_missing_dataset_lists_known_ones(tmp_path):
    with pytest.raises(DatasetError, match="known: gsm8k, intent_recognition, rotten_tomatoes"):
        load_dataset("nope")


def test_missing_data_file(tmp_path):
    folder = write_dataset(tmp_path / "d", tiny_rows())
    (folder / "data.jsonl").unlink()
    with pytest.raises(DatasetError, match="data.jsonl is missing"):
        load_dataset(folder)


def test_bad_json_line_is_named(tmp_path):
    folder = write_dataset(tmp_path / "d", tiny_rows())
    with (folder / "data.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(DatasetError, match="data.jsonl:101 is not valid JSON"):
        load_dataset(folder)


def test_too_small_for_the_splits(tmp_path):
    with pytest.raises(DatasetError, match="has 30 examples but its card asks for test 40"):
        load_dataset(write_dataset(tmp_path / "d", tiny_rows(30)))


def test_card_without_front_matter(tmp_path):
    folder = write_dataset(tmp_path / "d", tiny_rows())
    (folder / "README.md").write_text("# no front matter\n")
    with pytest.raises(DatasetError, match="no YAML front matter"):
        load_dataset(folder)
