"""The A/B event store: durable, one outcome per exposure, safe under concurrent processes."""

import multiprocessing

import pytest
from postgres_server import binaries, postgres_server

from promptyard.errors import UserError
from promptyard.errors import UnknownAssignmentError
from promptyard.serving import EventStore


@pytest.fixture(scope="module")
def postgres():
    if binaries() is None:
        pytest.skip("PostgreSQL is not installed on this machine")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    import sqlalchemy as sa

    url = request.getfixturevalue("postgres")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a clean schema for each test
        conn.exec_driver_sql("DROP TABLE IF EXISTS promptyard_ab_outcomes, promptyard_ab_exposures")
    engine.dispose()
    return url


@pytest.fixture
def store(url):
    s = EventStore(url)
    yield s
    s.close()


def test_exposures_and_outcomes_round_trip(store):
    a = store.record_exposure("exp#1", "user-1", "support", 3)
    b = store.record_exposure("exp#1", "user-2", "support", 4)
    store.record_exposure("exp#2", "user-1", "support", 3)
    store.record_outcome(a, True, latency_ms=120.0, cost=0.001)
    store.record_outcome(b, 0.0)
    assert store.exposure_counts("exp#1") == {3: 1, 4: 1}
    observations = store.observations("exp#1")
    assert [(o.version, o.value, o.latency_ms, o.cost) for o in observations] == [(3, 1.0, 120.0, 0.001), (4, 0.0, None, None)]
    assert store.version_of("exp#1", "user-2") == 4 and store.version_of("exp#1", "user-9") is None


def test_outcome_for_an_unknown_assignment_is_refused(store):
    with pytest.raises(UnknownAssignmentError, match="No exposure with assignment id 'nope'"):
        store.record_outcome("nope", 1.0)
    assert store.observations("exp#1") == []


def test_second_outcome_and_bad_values_are_refused(store):
    a = store.record_exposure("exp#1", "u", "support", 1)
    for bad in ("great", None, float("nan")):
        with pytest.raises(UserError, match="not a number|NaN"):
            store.record_outcome(a, bad)
    with pytest.raises(UserError, match="latency_ms=-5"):
        store.record_outcome(a, 1.0, latency_ms=-5)
    store.record_outcome(a, 1.0)
    with pytest.raises(UserError, match="already has an outcome"):
        store.record_outcome(a, 0.0)
    assert [o.value for o in store.observations("exp#1")] == [1.0]


def _writer(url: str, worker: int, count: int) -> None:
    store = EventStore(url)
    for i in range(count):
        assignment = store.record_exposure("exp#load", f"w{worker}-u{i}", "support", 1 + i % 2)
        store.record_outcome(assignment, i % 3 == 0, latency_ms=float(i))
    store.close()


def test_no_event_lost_under_concurrent_writer_processes(url):
    EventStore(url).close()
    workers, count = 4, 150
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    store = EventStore(url)
    assert sum(store.exposure_counts("exp#load").values()) == workers * count
    assert len(store.observations("exp#load")) == workers * count


def test_batches_keep_order_resolve_other_processes_ids_and_skip_second_outcomes(store):
    from promptyard.serving.events import EXPOSURE, OUTCOME

    a, b, c = "a" * 32, "b" * 32, "c" * 32
    written = store.write_batch([
        (EXPOSURE, a, "exp#1", "u1", "support", 3, 0, 1.0),
        (OUTCOME, a, "exp#1", 3, 1.0, 80.0, None, 2.0),
        (EXPOSURE, b, "exp#1", "u1", "support", 4, 1, 3.0),  # the same unit, served another version later
    ])
    assert written == (2, 1, [], [])
    late = (OUTCOME, c, None, None, 0.0, None, None, 5.0)  # an id issued elsewhere, its exposure not stored yet
    again = (OUTCOME, a, "exp#1", 3, 0.0, None, None, 6.0)  # a second outcome for a
    assert store.write_batch([(OUTCOME, b, None, None, 0.0, None, 0.002, 4.0), late, again]) == (0, 1, [late], [a])
    store.write_batch([(EXPOSURE, c, "exp#1", "u2", "support", 4, 1, 4.5)])
    assert store.write_batch([late]) == (0, 1, [], [])
    observations = store.observations("exp#1")
    # u1 counts in the version and epoch it was first served (v3, epoch 0), even for v4's outcome
    assert [(o.unit, o.version, o.epoch, o.served, o.value) for o in observations] == [
        ("u1", 3, 0, 3, 1.0), ("u1", 3, 0, 4, 0.0), ("u2", 4, 1, 4, 0.0)]
    assert store.first_versions("exp#1") == {"u1": 3, "u2": 4}
    assert store.first_versions("exp#1", before_epoch=1) == {"u1": 3}
    assert store.history("support", 4)[1] == [0.0, 0.0]


def test_a_store_written_before_epochs_were_recorded_is_upgraded_in_place(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE promptyard_ab_exposures (id VARCHAR(32) PRIMARY KEY, experiment_id "
                             "VARCHAR(200) NOT NULL, unit_id VARCHAR(200) NOT NULL, prompt VARCHAR(200) NOT NULL, "
                             "version INTEGER NOT NULL, at FLOAT NOT NULL)")
        conn.exec_driver_sql("INSERT INTO promptyard_ab_exposures VALUES ('x', 'exp#old', 'u', 'support', 1, 1.0)")
    engine.dispose()
    store = EventStore(url)
    store.record_outcome("x", 1.0)
    [observation] = store.observations("exp#old")
    assert (observation.unit, observation.version, observation.epoch) == ("u", 1, 0)
    store.close()
