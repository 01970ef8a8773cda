"""Test session setup: gevent must patch the world before anything else is imported."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from integrations.gevent_patch import patch_all  # noqa: E402

patch_all()


import decimal  # noqa: E402

import pytest  # noqa: E402


def _compile_the_tree_once() -> None:
    """With PYTHONDONTWRITEBYTECODE set (the usual Docker image setting), Python reads bytecode caches but
    never writes them, so every `run.py` process a test starts would compile mmflow's modules from source
    again — about a quarter of a second of CPU of each `serve`'s second. The session writes them
    once (compileall: only what changed since; __pycache__ is git-ignored); Python checks each cache against
    its source's mtime and size, so a stale one is never used. Without the setting Python caches as usual."""
    import compileall
    import re

    if sys.dont_write_bytecode:
        compileall.compile_dir(str(ROOT), quiet=2, rx=re.compile(r"/\.[^/]+/|/node_modules/"))


_compile_the_tree_once()


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
    databases.start_keeper()
    yield
    databases.stop_keeper()
    databases.drop_template()


def _dropping_what_this_scope_creates():
    """Databases created while this scope ran (tests/databases.py) are dropped when it ends."""
    if not databases.on_postgres():
        yield
        return
    mark = databases.created_count()
    yield
    databases.drop_created_since(mark)


# Autouse fixtures of a scope are set up before its other fixtures: each mark is taken before a fixture of the
# same scope creates a database, so a module fixture's database outlives the module's tests, not the first one.
_drop_module_databases = pytest.fixture(scope="module", autouse=True, name="_drop_module_databases")(
    _dropping_what_this_scope_creates)
_drop_class_databases = pytest.fixture(scope="class", autouse=True, name="_drop_class_databases")(
    _dropping_what_this_scope_creates)
_drop_test_databases = pytest.fixture(autouse=True, name="_drop_test_databases")(_dropping_what_this_scope_creates)
