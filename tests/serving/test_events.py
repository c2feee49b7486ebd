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
