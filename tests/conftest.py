"""Test session setup: gevent must patch the world before anything else is imported."""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import decimal  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_decimal_context():
    """ccxt's decimal_to_precision mutates the current Decimal context (rounding HALF_UP, Underflow
    trapped). Production code calls ccxt inside a local context; tests that drive ccxt directly
    must not leak that into the next test either."""
    with decimal.localcontext(decimal.Context()):
        yield


from tests import databases  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _postgres_template():
    """With MMFLOW_TEST_DATABASE_URL=postgresql://…: the schema'd template each test database is copied from."""
    if not databases.on_postgres():
        yield
        return
    databases.create_template()
    yield
    databases.drop_template()


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """Each test's PostgreSQL databases (tests/databases.py) are dropped when it ends."""
    yield
    if databases.on_postgres():
        databases.drop_test_databases()
