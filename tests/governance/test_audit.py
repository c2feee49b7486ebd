"""The audit log: append-only, hash-chained, tamper-evident."""

import sqlite3
import threading

import pytest

from promptyard.errors import AuditTamperedError
from promptyard.governance import AuditLog


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    audit.append("alice", "register", prompt="support", version=1, after={"template": "Be kind. {{q}}"})
    audit.append("alice", "alias", prompt="support", version=1, alias="production", before=None, after=1)
    audit.append("bob", "approve", prompt="support", version=2, alias="production", reason="looks right")
    return audit


def db(log):
    return sqlite3.connect(log.url.removeprefix("sqlite:///"))


def test_entries_chain_and_verify(log):
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    assert log.verify() == 3
    assert [e.action for e in log.entries("support")] == ["register", "alias", "approve"]
    lines = log.export_jsonl().splitlines()
    assert len(lines) == 3 and '"user": "bob"' in lines[2]


def test_an_edited_entry_is_detected(log):
    with db(log) as conn:
        conn.execute("UPDATE promptyard_audit SET user = 'mallory' WHERE seq = 2")
    with pytest.raises(AuditTamperedError, match="entry 2 was edited"):
        log.verify()


def test_a_deleted_entry_is_detected(log):
    with db(log) as conn:
        conn.execute("DELETE FROM promptyard_audit WHERE seq = 2")
    with pytest.raises(AuditTamperedError, match="entry 2 is missing"):
        log.verify()


def test_a_rewritten_chain_is_caught_by_a_recorded_head(log):
    head = log.head()
    with db(log) as conn:
        conn.execute("DELETE FROM promptyard_audit WHERE seq = 3")
    assert log.verify() == 2  # the chain alone cannot see a removed newest entry...
    with pytest.raises(AuditTamperedError, match="recorded head"):
        log.verify(expected_head=head)  # ...a head kept elsewhere can


def test_concurrent_appends_never_fork_the_chain(log):
    def write(worker):
        for i in range(20):
            log.append(f"user{worker}", "alias", prompt="p", version=i, alias="staging")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.verify() == 83
