import sys

import pytest

from promptyard.errors import UserError
from promptyard.runtime import get_settings
from promptyard.evaluation import get_metric

INTENTS = ["add_to_playlist", "book_restaurant", "get_weather", "play_music"]


@pytest.mark.parametrize(("reply", "expected"), [
    ("play_music", "play_music"),
    ('{"label": "book_restaurant"}', "book_restaurant"),
    ("This message is intended to add to the playlist.", "add_to_playlist"),
    ("I want to book a restaurant and play music", "book_restaurant"),
    ("Nothing that matches", ""),
])
def test_exact_label_finds_the_first_label(reply, expected):
    assert get_metric("exact_label", INTENTS).parse(reply) == expected


def test_exact_label_scores_normalised():
    metric = get_metric("exact_label", ["positive", "negative"])
    assert metric.score(metric.parse("Positive."), "positive") == 1.0
    assert metric.score(metric.parse("negative"), "positive") == 0.0


def test_numeric_takes_the_last_number():
    metric = get_metric("numeric")
    assert metric.parse("3 apples + 4 = 1,204 total") == "1204"
    assert metric.score("1204", "1,204") == 1.0
    assert metric.score("", "3") == 0.0


def test_contains():
    metric = get_metric("contains")
    assert metric.score("The answer is Paris.", "paris") == 1.0
    assert metric.score("Parisian", "paris") == 0.0


def test_regex_token_f1_json_valid():
    assert get_metric("regex", pattern=r"answer is {gold}").score("The answer is 4.", "4") == 1.0
    assert get_metric("token_f1").score("the cat sat", "cat sat down") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    schema = {"type": "object", "required": ["a"]}
    assert get_metric("json_valid", schema=schema).score('{"a": 1}', "") == 1.0
    assert get_metric("json_valid", schema=schema).score("{}", "") == 0.0
    assert get_metric("json_valid", schema=schema).score("nope", "") == 0.0


def test_custom_metric_by_dotted_path_when_allowed(monkeypatch):
    monkeypatch.setenv("PROMPTYARD_METRIC_ALLOWLIST", "other.module, helpers")
    get_settings.cache_clear()
    metric = get_metric("helpers:length_metric")
    assert metric.score("abcd", "x") == 4.0 and metric.name == "helpers:length_metric"
    with pytest.raises(UserError, match="cannot be imported"):
        get_metric("helpers:nope")


@pytest.mark.parametrize("name", ["os:system", "subprocess.run", "helpers:length_metric", "helpersx:f"])
def test_a_card_cannot_make_promptyard_import_code(name, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_METRIC_ALLOWLIST", "helpersx.sub")
    get_settings.cache_clear()
    imported = set(sys.modules)
    with pytest.raises(UserError, match=f"Metric {name!r} is not allowed: a dataset card cannot make promptyard "
                                        "import code.*promptyard.metrics.*PROMPTYARD_METRIC_ALLOWLIST"):
        get_metric(name)
    assert "helpersx" not in set(sys.modules) - imported


def test_a_metric_registered_under_the_entry_point_group(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring `promptyard.metrics`: named by its entry-point name."""
    (tmp_path / "brevity_metric.py").write_text("def brevity(reply, gold):\n    return 1.0 if len(reply) < 10 else 0.0\n")
    info = tmp_path / "brevity_metric-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brevity-metric\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[promptyard.metrics]\nbrevity = brevity_metric:brevity\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    metric = get_metric("brevity")
    assert (metric.score("short", "x"), metric.score("a much longer reply", "x")) == (1.0, 0.0)


def test_unknown_metric():
    with pytest.raises(UserError, match="Unknown metric 'bleu': use one of exact_label, contains, numeric, regex"):
        get_metric("bleu")
