import pytest
from loopback import CountingServer


@pytest.fixture
def server():
    with CountingServer() as srv:
        yield srv
