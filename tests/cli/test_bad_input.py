"""Bad input: one clear message naming the value and the fix, before any service is contacted, and
nothing written. MLflow points at a port where nothing listens, so a check that came after a call
would report the unreachable server instead of the input."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import governed

from promptyard.cli import cli
from promptyard.runtime import get_settings


@pytest.fixture
def no_services(monkeypatch):
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("PROMPTYARD_LM_BASE_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()


def _fails(*args: str) -> str:
    out = CliRunner().invoke(cli, list(args))
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit)
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.output
    return lines[0]


def test_a_template_file_that_is_not_utf8(tmp_path, no_services):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Réponds poliment.\n\nQ: {{q}}".encode("latin-1"))
    message = _fails("prompts", "register", "support", "--file", str(path))
    assert f"The template file {path} is not UTF-8 text (byte 0xe9 on line 1): save it as UTF-8" in message


def test_a_template_longer_than_the_registry_holds(tmp_path, no_services):
    path = tmp_path / "huge.txt"
    path.write_text("x" * 100_001 + "\n\nQ: {{q}}")
    message = _fails("prompts", "register", "support", "--file", str(path))
    assert "The template has 100,011 characters; MLflow's prompt registry holds at most 100,000: shorten it" in message


@pytest.mark.parametrize("name", ["a..b", "a.", ".a", "a b"])
def test_prompt_names_with_empty_parts_are_refused(name, no_services):
    message = _fails("prompts", "register", name, "--template", "Hi {{q}}")
    assert f"Prompt reference {name!r} is not valid" in message and "single dots between parts" in message


def test_a_data_file_that_is_not_utf8(tmp_path, tiny_dataset, no_services):
    data = tiny_dataset / "data.jsonl"
    data.write_bytes(data.read_bytes() + '{"text": "café", "label": "positive"}\n'.encode("latin-1"))
    message = _fails("eval", "support", "--dataset", str(tiny_dataset))
    assert f"The data file {data} is not UTF-8 text" in message and "on line 101" in message


def test_a_missing_dataset_folder_is_named_as_a_folder(tmp_path, no_services):
    message = _fails("eval", "support", "--dataset", str(tmp_path / "nowhere"))
    assert message.startswith(f"Error: Dataset folder '{tmp_path / 'nowhere'}' does not exist: give a folder holding "
                              "data.jsonl and a README.md card, or one of the names under")


@pytest.mark.parametrize(("config", "expected"), [
    ("temperature: hot", "model_config temperature: 'hot' is not valid (Input should be a valid number"),
    ("temprature: 0.5", "model_config has no setting 'temprature' (did you mean 'temperature'?)"),
    ("max_tokens: -4", "model_config max_tokens: -4 is not valid (Input should be greater than 0)"),
])
def test_prompt_file_settings_are_checked_before_anything_is_written(tmp_path, registry, config, expected):
    governed(registry).register("support", "Be kind.\n\nQ: {{q}}")
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "support.yaml").write_text(f'name: support\ntemplate: "Be brief.\\n\\nQ: {{{{q}}}}"\n'
                                         f"model_config:\n  {config}\n")
    message = _fails("prompts", "import", "--dir", str(folder))
    assert f"{folder / 'support.yaml'}: {expected}" in message
    assert [int(v.version) for v in registry.versions("support")] == [1]


def test_export_refuses_names_that_would_share_a_file_and_writes_nothing(tmp_path, registry):
    import mlflow

    governed(registry).register("a.b", "One {{q}}")
    uri = get_settings().tracking_uri
    mlflow.MlflowClient(uri, uri).create_prompt("a..b")  # made outside promptyard
    message = _fails("prompts", "export", "--dir", str(tmp_path / "out"))
    assert "Prompt name(s) 'a..b' cannot be exported: empty parts between dots make file names ambiguous. Nothing " \
           "was written" in message
    assert not (tmp_path / "out").exists()
