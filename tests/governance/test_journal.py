"""The audit log and the registry never disagree: concurrent writers from separate processes, and
processes killed between the registry write and its audit entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter

from click.testing import CliRunner
from helpers import governed

from promptyard.cli import cli
from promptyard.governance import Journal

_WRITERS = textwrap.dedent("""
    import json, os, sys
    from promptyard.governance import Governance
    from promptyard.registry import GenerationConfig

    def write(worker, template):
        governance = Governance.from_settings(user="worker-" + worker)
        version, created = governance.register_once("support", template, generation=GenerationConfig(),
                                                    commit_message="from worker " + worker)
        governance.set_alias("support", "staging", int(version.version), reason="worker " + worker)
        governance.set_alias("support", "w" + worker, int(version.version))
        return f"{version.version} {created}"

    children = []  # one process per template, forked once the imports are done, so they race at once
    for worker, template in enumerate(json.loads(sys.argv[1])):
        read, written = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                os.write(written, write(str(worker), template).encode())
                os._exit(0)
            except BaseException as exc:
                os.write(written, f"{type(exc).__name__}: {exc}"[-3000:].encode())
                os._exit(1)
        os.close(written)
        children.append((pid, read))
    for pid, read in children:
        with os.fdopen(read) as pipe:
            said = pipe.read()
        _, status = os.waitpid(pid, 0)
        print(("ok " if status == 0 else "failed ") + said, flush=True)
""")


def _run(code: str, *args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env or dict(os.environ))


def test_twenty_processes_registering_and_moving_aliases_lose_nothing_and_duplicate_nothing(registry):
    governed(registry).register("support", "Seed.\n\nQ: {{question}}")
    templates = [f"Answer in style {i % 10}.\n\nQ: {{{{question}}}}" for i in range(20)]  # each sent twice
    launcher = _run(_WRITERS, json.dumps(templates))
    out, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 0, err[-3000:]
    lines = out.strip().split("\n")
    assert len(lines) == 20 and all(line.startswith("ok ") for line in lines), out[-3000:]
    results = [(int(line.split()[1]), line.split()[2] == "True") for line in lines]

    versions = {int(v.version): v.template for v in registry.versions("support")}
    assert len(versions) == 11  # the seed and ten templates: none lost, none twice
    assert sorted(versions.values()) == sorted({"Seed.\n\nQ: {{question}}", *templates})
    assert Counter(created for _, created in results) == Counter({True: 10, False: 10})
    for (number, _), template in zip(results, templates, strict=True):
        assert versions[number] == template  # each worker got the version holding its own template
    log = governed(registry).audit
    assert sorted(e.version for e in log.find("register", prompt="support")) == sorted(versions)
    for i, (number, _) in enumerate(results):  # every worker's own alias, moved and audited
        assert registry.alias_version("support", f"w{i}") == number
        assert [e.after for e in log.alias_history("support", f"w{i}")] == [str(number)]
    staging = log.alias_history("support", "staging")
    assert int(staging[-1].after) == registry.alias_version("support", "staging")
    assert Journal(log, registry).open_intent("support") is None
    out = CliRunner().invoke(cli, ["audit", "verify"])
    assert out.exit_code == 0, out.output


_KILLED = textwrap.dedent("""
    import os, signal, sys
    from promptyard.governance import AuditLog, Governance
    from promptyard.registry import Registry
    where = sys.argv[1]
    real_append, real_register, real_alias = AuditLog.append, Registry._register, Registry._set_alias

    def append(self, user, action, **kw):
        if action == where:  # the registry write is done; its audit entry never comes
            os.kill(os.getpid(), signal.SIGKILL)
        return real_append(self, user, action, **kw)

    def register(self, *args, **kw):
        if where == "before-register":  # the intent is written; the registry write never comes
            os.kill(os.getpid(), signal.SIGKILL)
        return real_register(self, *args, **kw)

    AuditLog.append, Registry._register = append, register
    governance = Governance.from_settings(user="alice")
    governance.register("support", "Be brief.\\n\\nQ: {{question}}")
    governance.set_alias("support", "staging", 2)
""")


def _killed_at(where: str) -> None:
    process = _run(_KILLED, where)
    process.communicate(timeout=120)
    assert process.returncode == -9


def test_a_process_killed_after_the_registry_write_gets_its_audit_entry_on_the_next_write(registry):
    governed(registry, "alice").register("support", "Be kind.\n\nQ: {{question}}")
    _killed_at("register")
    assert [int(v.version) for v in registry.versions("support")] == [2, 1]  # written, not audited

    out = CliRunner().invoke(cli, ["audit", "verify"])
    assert out.exit_code == 0, out.output
    assert "settled an interrupted write: register support v2 (recorded after an interrupted write" in out.output
    entry = governed(registry).audit.find("register", prompt="support")[-1]
    assert (entry.version, entry.user, json.loads(entry.after)["template"]) == (2, "alice", "Be brief.\n\nQ: {{question}}")
    assert "every protected alias and every version is what the audit log recorded" in out.output


def test_a_process_killed_before_the_registry_write_leaves_an_abandoned_intent(registry):
    governed(registry, "alice").register("support", "Be kind.\n\nQ: {{question}}")
    _killed_at("before-register")
    assert [int(v.version) for v in registry.versions("support")] == [1]
    governed(registry, "bob").register("support", "Be quick.\n\nQ: {{question}}")  # the next writer settles it
    log = governed(registry).audit
    actions = [(e.action, e.user) for e in log.entries("support")]
    assert actions[-4:] == [("intent", "alice"), ("abandoned", "alice"), ("intent", "bob"), ("register", "bob")]
    assert log.find("register", prompt="support")[-1].version == 2


def test_an_alias_move_killed_before_its_audit_entry_is_recorded_by_the_next_writer(registry):
    governed(registry, "alice").register("support", "Be kind.\n\nQ: {{question}}")
    governed(registry, "alice").register("support", "Be brief.\n\nQ: {{question}}")
    governed(registry, "alice").set_alias("support", "staging", 1)
    _killed_at("alias")  # registers v3 (audited), moves staging to 2 in the registry, dies before the entry
    assert registry.alias_version("support", "staging") == 2
    governed(registry, "bob").set_alias("support", "dev", 1)
    history = governed(registry).audit.alias_history("support", "staging")
    assert [(e.user, e.before, e.after) for e in history] == [("alice", None, "1"), ("alice", "1", "2")]
    assert "interrupted write" in history[-1].reason
