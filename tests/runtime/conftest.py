import pytest

from helpers import free_port
from promptyard.runtime import Settings, stack


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server started by the stack, shared by the tests of this folder (settings to reach it)."""
    settings = Settings(home=tmp_path_factory.mktemp("stack") / "home", prefect_port=free_port())
    with stack.running(settings, ("prefect",), echo=lambda _: None):
        yield settings
