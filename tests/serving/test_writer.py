"""The buffered event path: nothing written on the request path, nothing lost at a clean exit,
outcomes checked at once or when written, a bounded loss on a crash."""

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from promptyard.errors import UnknownAssignmentError, UserError
from promptyard.serving import EventStore, Experiments, PromptClient, choose_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def running(support):
    """support@production split 50/50 between versions 1 and 2."""
    return Experiments(support).start("support@production", {1: 0.5, 2: 0.5})


def client(tmp_path, name="app", **options):
    return PromptClient(snapshot_dir=tmp_path / f"snap-{name}", events_url=f"sqlite:///{tmp_path / 'events.db'}",
                        **options)


def test_the_request_path_writes_nothing_and_close_writes_everything(running, tmp_path):
    app = client(tmp_path, flush_interval=60.0)  # no timed write during the test
    writes = []
    write_batch = app.events.write_batch

    def spy(rows):
        writes.append((threading.current_thread().name, len(rows)))
        return write_batch(rows)

    app.events.write_batch = spy
    assignments = [app.assign("support@production", f"user-{i % 40}") for i in range(200)]
    for a in assignments:
        app.record_outcome(a, a.version == 2, latency_ms=100.0)
    assert writes == [] and app.writer.stats()["pending"] == 400
    app.close()
    assert sum(n for _, n in writes) == 400 and threading.current_thread().name not in {name for name, _ in writes[:-1]}
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    assert sum(store.exposure_counts(running.id).values()) == 200
    observations = store.observations(running.id)
    assert len(observations) == 200 and len({o.unit for o in observations}) == 40
    assert app.writer.stats() == {"exposures": 200, "outcomes": 200, "dropped": 0, "duplicates": 0, "pending": 0}


def test_the_background_writer_writes_within_the_interval(running, tmp_path):
    app = client(tmp_path, flush_interval=0.05)
    a = app.assign("support@production", "user-1")
    app.record_outcome(a, 1)
    deadline = time.monotonic() + 5
    while app.writer.stats()["outcomes"] < 1:
        assert time.monotonic() < deadline, "the background writer never wrote"
        time.sleep(0.01)
    assert app.writer._thread.name == "promptyard-ab-writer"
    app.close()


def test_outcomes_are_checked_at_once_when_this_client_issued_them(running, tmp_path):
    app = client(tmp_path)
    a = app.assign("support@production", "user-1")
    app.record_outcome(a.id, 0.5)
    with pytest.raises(UserError, match=f"Assignment {a.id} already has an outcome"):
        app.record_outcome(a, 1)
    for bad in ("made-up", "A" * 32, a.id + "0"):
        with pytest.raises(UnknownAssignmentError, match=f"No exposure with assignment id '{bad}'"):
            app.record_outcome(bad, 1)
    with pytest.raises(UserError, match="not a number"):
        app.record_outcome(app.assign("support@production", "user-2"), "great")
    app.close()
    assert [o.value for o in EventStore(app.events_url).observations(running.id)] == [0.5]


def test_an_outcome_for_another_process_assignment_waits_for_its_exposure(running, tmp_path):
    issuer, recorder = client(tmp_path, "issuer", flush_interval=60.0), client(tmp_path, "recorder", flush_interval=60.0)
    a = issuer.assign("support@production", "user-1")
    recorder.record_outcome(a.id, 1, latency_ms=20.0)  # e.g. a thumbs-up handled by another worker
    recorder.writer.flush()  # the exposure is still in the issuer's queue: kept, not dropped
    assert recorder.writer.stats()["pending"] == 1
    issuer.writer.flush()
    recorder.writer.flush()
    assert recorder.writer.stats() == {"exposures": 0, "outcomes": 1, "dropped": 0, "duplicates": 0, "pending": 0}
    [observation] = EventStore(issuer.events_url).observations(running.id)
    assert (observation.version, observation.served, observation.unit, observation.latency_ms) == \
        (a.version, a.version, "user-1", 20.0)
    issuer.close()
    recorder.close()


def test_closing_right_after_an_outcome_for_another_process_assignment_writes_it(running, tmp_path):
    """The recorder shuts down before the issuer's next timed write: close() waits for the exposure
    (within `close_grace`) instead of dropping the outcome."""
    issuer, recorder = client(tmp_path, "issuer", flush_interval=0.2), client(tmp_path, "recorder", flush_interval=0.2)
    assignments = [issuer.assign("support@production", f"user-{i}") for i in range(300)]
    for a in assignments:
        recorder.record_outcome(a.id, 1)
    started = time.monotonic()
    recorder.close()
    assert time.monotonic() - started < recorder.writer.close_grace
    assert recorder.writer.stats() == {"exposures": 0, "outcomes": 300, "dropped": 0, "duplicates": 0, "pending": 0}
    issuer.close()
    assert len(EventStore(issuer.events_url).observations(running.id)) == 300


def test_a_process_recording_faster_than_the_store_writes_keeps_its_backlog_bounded(running, tmp_path):
    """What a crash can lose is what waits in memory: never more than `backlog` rows, however fast the app
    records (the recording thread writes a batch itself once that many wait)."""
    app = client(tmp_path, flush_interval=60.0)  # the timed writer would not come for a minute
    app.assign("support@production", "warm-up")
    app.writer.backlog = 100
    most = 0
    for i in range(2000):
        app.record_outcome(app.assign("support@production", f"u{i % 97}"), i % 2)
        most = max(most, app.writer.stats()["pending"])
    assert most <= 100 and app.writer.stats()["exposures"] + app.writer.stats()["outcomes"] >= 3900
    app.close()
    assert len(EventStore(app.events_url).observations(running.id)) == 2000


def test_an_outcome_whose_exposure_never_arrives_is_dropped_and_logged(running, tmp_path, caplog):
    app = client(tmp_path, flush_interval=60.0)
    app.record_outcome("0" * 32, 1)
    app.writer.grace, app.writer.close_grace = 0.0, 0.0
    with caplog.at_level(logging.ERROR, logger="promptyard.serving"):
        app.flush()
    assert app.writer.stats()["dropped"] == 1 and app.writer.stats()["pending"] == 0
    assert f"dropped the outcome of assignment {'0' * 32}" in caplog.text
    app.close()


def test_rows_are_kept_while_the_store_does_not_answer(running, tmp_path, caplog):
    app = client(tmp_path, flush_interval=0.02)
    write_batch, failures = app.events.write_batch, []

    def flaky(rows):
        if len(failures) < 3:
            failures.append(len(rows))
            raise ConnectionError("the database does not answer")
        return write_batch(rows)

    app.events.write_batch = flaky
    with caplog.at_level(logging.WARNING, logger="promptyard.serving"):
        for i in range(50):
            app.record_outcome(app.assign("support@production", f"u{i}"), 1)
        deadline = time.monotonic() + 20
        while app.writer.stats()["outcomes"] < 50:
            assert time.monotonic() < deadline, app.writer.stats()
            time.sleep(0.05)
    assert len(failures) == 3 and "unreachable" in caplog.text and "events kept" in caplog.text
    app.close()
    assert len(EventStore(app.events_url).observations(running.id)) == 50


def test_units_keep_their_version_after_a_reallocation_without_a_read_per_request(support, tmp_path):
    experiments = Experiments(support)
    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5}, thompson=True)
    before = client(tmp_path, "before")
    first = {u: before.assign("support@production", f"u{u}").version for u in range(300)}
    before.close()
    experiments.update(experiment.with_weights({1: 0.1, 2: 0.9}))
    app = client(tmp_path, "after")
    app.assign("support@production", "someone")
    [sticky] = app._sticky.values()
    assert sticky.ready.wait(10) and sticky.experiment.epoch == 1
    # only units whose first version differs from where the new weights would put them are remembered
    assert sticky.moved == {f"u{u}": v for u, v in first.items() if v != choose_version(sticky.experiment, f"u{u}")}
    assert 0 < len(sticky.moved) < 300

    def no_reads(*_):
        raise AssertionError("assign read the store")

    app.events.version_of = no_reads
    assert {u: app.assign("support@production", f"u{u}").version for u in range(300)} == first
    newcomers = [app.assign("support@production", f"new{u}").version for u in range(300)]
    assert sum(v == 2 for v in newcomers) > 240
    app.close()


SCRIPT = """
import json, os, sys, time
from promptyard.serving import PromptClient
worker, count, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
app = PromptClient(events_url=sys.argv[4], snapshot_dir=sys.argv[5] + f"/snap-{worker}", flush_interval=0.1)
for i in range(count):
    a = app.assign("support@production", f"w{worker}-u{i % 50}")
    app.record_outcome(a, i % 3 == 0, latency_ms=float(i))
if mode == "close":
    app.close()
elif mode == "crash":  # killed: no exit handler runs
    time.sleep(1.0)    # ten flush intervals: what was recorded before is written
    for i in range(count):
        app.record_outcome(app.assign("support@production", f"late-{worker}-{i}"), 1)
    os._exit(0)
elif mode == "fork":  # the child records its own events; the parent's queued rows stay the parent's
    pid = os.fork()
    if pid == 0:
        for i in range(count):
            app.record_outcome(app.assign("support@production", f"child-{worker}-{i}"), 1)
        sys.exit(0)
    os.waitpid(pid, 0)
print(json.dumps(app.writer.stats()))
"""


def run_workers(tmp_path, modes, count):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    EventStore(url).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(w), str(count), mode, url, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for w, mode in enumerate(modes)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(modes), [err[-2000:] for _, err in outputs]
    return EventStore(url), [out for out, _ in outputs]


def test_rows_written_equal_rows_recorded_after_a_clean_shutdown_of_four_processes(running, tmp_path):
    count = 500
    store, _ = run_workers(tmp_path, ["close", "exit", "close", "exit"], count)  # "exit": flushed by atexit
    assert sum(store.exposure_counts(running.id).values()) == 4 * count
    observations = store.observations(running.id)
    assert len(observations) == 4 * count and len({o.unit for o in observations}) == 4 * 50
    assert sorted(o.latency_ms for o in observations) == sorted(float(i) for _ in range(4) for i in range(count))


def test_a_crash_loses_at_most_the_last_interval_and_a_fork_writes_each_row_once(running, tmp_path):
    count = 200
    store, outputs = run_workers(tmp_path, ["crash", "fork"], count)
    observations = store.observations(running.id)
    units = [o.unit for o in observations]
    crashed = [u for u in units if u.startswith("w0-")]
    assert len(crashed) == count  # recorded a second before the crash: all written
    assert len([u for u in units if u.startswith("late-0-")]) < count  # recorded just before: lost
    assert len([u for u in units if u.startswith(("w1-", "child-1-"))]) == 2 * count  # parent's + child's, once
    assert json.loads(outputs[1])["exposures"] == count  # the parent wrote only its own rows
