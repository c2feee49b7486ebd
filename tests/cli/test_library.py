"""The prompt library from the command line: two-line use, search, diff, files, promotion, audit, policy."""

import sqlite3

import pytest
from click.testing import CliRunner

import promptyard
from promptyard.cli import cli
from promptyard.runtime import get_settings


def invoke(*args, code=0, user="alice"):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"PROMPTYARD_USER": user})
    assert result.exit_code == code, result.output
    return result.output if code else result.stdout


def test_the_two_line_tutorial():
    prompt = promptyard.register_prompt("greeting", "Hello {{name}}, how can I help?")
    assert prompt.format(name="Ada") == "Hello Ada, how can I help?"
    assert promptyard.load_prompt("greeting/1").format(name="Bo") == "Hello Bo, how can I help?"


def test_templates_never_execute_code():
    prompt = promptyard.register_prompt("safe", "Hi {{name}}")
    assert prompt.format(name="{{__import__('os').system('touch /tmp/pwned')}}") == \
        "Hi {{__import__('os').system('touch /tmp/pwned')}}"
    with pytest.raises(promptyard.TemplateError):
        promptyard.register_prompt("unsafe", "Hi {{ __import__('os').getcwd() }}")


@pytest.fixture
def library():
    invoke("prompts", "register", "support.refund", "--template", "Handle refunds politely.\\n\\nQ: {{question}}",
           "--alias", "production")
    invoke("prompts", "register", "support.refund", "--template", "Handle refunds politely and fast.\\n\\nQ: {{question}}")
    invoke("prompts", "register", "sales.intro", "--template", "Introduce the product.\\n\\nLead: {{lead}}")
    from promptyard.governance import Governance

    Governance.from_settings().set_prompt_tags("support.refund", {"team": "support"})


def test_search_and_diff(library):
    assert invoke("prompts", "search", "--tag", "team=support", "--text", "REFUND").startswith("support.refund")
    assert invoke("prompts", "search", "--namespace", "sales.").startswith("sales.intro")
    assert invoke("prompts", "search", "--tag", "team=sales") == "no prompt matches\n"
    out = invoke("prompts", "diff", "support.refund", "1", "2")
    assert "-Handle refunds politely." in out and "+Handle refunds politely and fast." in out


def test_export_import_round_trip_is_idempotent(library, tmp_path):
    folder = tmp_path / "prompts"
    assert invoke("prompts", "export", "--dir", str(folder)) == f"wrote 2 prompt file(s) under {folder}\n"
    refund = folder / "support" / "refund.yaml"
    assert "Handle refunds politely and fast." in refund.read_text() and (folder / "sales" / "intro.yaml").is_file()
    assert invoke("prompts", "import", "--dir", str(folder)).count("unchanged") == 2
    refund.write_text(refund.read_text().replace("and fast", "and quickly"))
    out = invoke("prompts", "import", "--dir", str(folder))
    assert "support.refund                 registered             v3" in out
    assert invoke("prompts", "import", "--dir", str(folder)).count("unchanged") == 2
    assert invoke("prompts", "show", "support.refund@production").startswith("support.refund version 1")


def test_import_checks_every_file_before_writing(library, tmp_path):
    folder = tmp_path / "prompts"
    invoke("prompts", "export", "--dir", str(folder))
    (folder / "sales" / "intro.yaml").write_text((folder / "sales" / "intro.yaml").read_text().replace("Introduce", "Pitch"))
    (folder / "broken.yaml").write_text("name: broken\ntemplate: [unclosed\n")
    assert "broken.yaml line 3 does not parse" in invoke("prompts", "import", "--dir", str(folder), code=1)
    assert "v1" in invoke("prompts", "versions", "sales.intro")
    assert len(invoke("prompts", "versions", "sales.intro").splitlines()) == 1


def test_promote_names_the_failed_check_and_the_audit_log_shows_everything(library):
    out = invoke("prompts", "promote", "support.refund", "2", "--to", "production", code=1)
    assert "failed: evidence, approval" in out and "support.refund@production is unchanged" in out
    assert "cannot approve it" in invoke("prompts", "approve", "support.refund", "2", code=1)
    assert invoke("prompts", "approve", "support.refund", "2", user="bob") == "bob approved support.refund/2 for production\n"
    log = invoke("audit", "log", "--prompt", "support.refund")
    assert [line.split()[3] for line in log.splitlines()] == ["register", "alias", "register", "tag", "refused",
                                                              "refused", "approve"]
    refusals = [line for line in log.splitlines() if " refused " in line]
    assert "failed: evidence, approval" in refusals[0] and "cannot approve it" in refusals[1]
    with_intents = invoke("audit", "log", "--prompt", "support.refund", "--intents")
    assert [line.split()[3] for line in with_intents.splitlines()][:6] == ["intent", "register", "intent", "alias",
                                                                          "intent", "register"]
    assert invoke("audit", "verify").startswith("audit log intact: 12 entries")


def test_audit_verify_fails_on_a_tampered_log(library):
    head = invoke("audit", "head").strip()
    with sqlite3.connect(get_settings().audit_store_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE promptyard_audit SET reason = 'nothing to see' WHERE seq = 2")
    assert "entry 2 was edited" in invoke("audit", "verify", "--head", head, code=1)


def test_policy_commands(tmp_path, library):
    bad = tmp_path / "bad.yaml"
    bad.write_text('roles:\n  "":\n    admin: [carol]\n    superuser: [eve]\n')
    assert "line 4: unknown role 'superuser'" in invoke("policy", "check", str(bad), code=1)
    good = tmp_path / "team.yaml"
    good.write_text('roles:\n  "": {viewer: ["*"], admin: [carol]}\n  "support.": {editor: [alice]}\n')
    assert invoke("policy", "check", str(good)).startswith(f"{good}: valid")
    invoke("policy", "apply", str(good), "--reason", "team policy", user="carol")
    assert "cannot change the policy" in invoke("policy", "apply", str(good), "--reason", "x", user="mallory", code=1)
    assert "mallory is viewer on 'sales.intro' and cannot register" in invoke(
        "prompts", "register", "sales.intro", "--template", "x {{lead}}", user="mallory", code=1)
    policy_entries = [e for e in promptyard.AuditLog(get_settings().audit_store_url).entries() if e.action == "policy"]
    assert [(e.user, e.reason) for e in policy_entries] == [("carol", "team policy")]
