import pytest


@pytest.fixture(scope="session")
def smollm2():
    return "fake"


def test_a(smollm2):
    pass
