"""Test session setup: gevent must patch the world before any test module is imported.

The suite runs on two pytest-xdist workers (pytest_cmdline_main below). Each process that runs tests — an xdist
worker, or pytest itself (``-n 0``, a single file) — patches in ``pytest_configure``, before collection imports a test
module. The xdist controller never patches: it only talks to the workers through execnet's threads (patched, they
would become greenlets blocked on the workers' pipes). A worker's execnet thread and the queue it hands test
indices through were made before the patch, so they stay real threads and locks."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import decimal  # noqa: E402

import pytest  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    xdist_controller = (config.pluginmanager.hasplugin("xdist") and "PYTEST_XDIST_WORKER" not in os.environ
                        and config.getoption("dist", "no") != "no")
    if xdist_controller:
        return
    from integrations.gevent_patch import patch_all

    patch_all()
    if "PYTEST_XDIST_WORKER" in os.environ:
        for plugin in config.pluginmanager.get_plugins():
            if type(plugin).__name__ == "WorkerInteractor":
                plugin.torun._has_items_event = _EventAcrossThreads()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The README's ``python -m pytest -q`` on two xdist workers (a machine of two or more cores), each test file on
    one of them (``--dist loadfile``: a file's module fixtures — fakes, demo worlds — are made once). None when the
    command names a single test file (it runs in pytest's own process, no workers to start), with ``--pdb``, on one
    core, or when ``-n`` is given (``-n 0``: the old single process)."""
    if (not config.pluginmanager.hasplugin("xdist") or "PYTEST_XDIST_WORKER" in os.environ
            or config.getoption("numprocesses", None) is not None or config.getoption("usepdb", False)):
        return
    files = {arg.split("::")[0] for arg in config.args}
    if len(files) == 1 and Path(config.invocation_params.dir, next(iter(files))).is_file():
        return
    if len(os.sched_getaffinity(0)) >= 2:
        config.option.numprocesses = 2
        if config.getoption("dist", "no") == "no":
            config.option.dist = "loadfile"
            config.option.loadscopereorder = False  # xdist's default puts the files with most tests first: ours
            # puts the longest first (HEAVY_FIRST below)


# The files that keep a worker longest (half a minute or more each on a loaded machine, measured per test with
# -n 0 on SQLite, 2026-12-07, after the archive's scale test went to 10,000 orders; test_cluster.py runs on the
# PostgreSQL pass only), longest first. On the workers they are handed out first, so the last minute of a run is
# never one worker alone with one of them. Only an order: a file missing here (or renamed) just starts later.
HEAVY_FIRST = ("test_venues_flow.py", "test_crashfuzz.py", "test_cli_operator.py", "test_demo.py", "test_cluster.py",
               "test_strategy_loop.py", "test_strategy_crash.py", "test_unreachable.py", "test_recovery.py",
               "test_flow_exit.py", "test_exit_crash.py", "test_archive.py", "test_treasury_crash.py",
               "test_flow_strategy.py", "test_benches.py", "test_dashboard_browser.py", "test_breakers.py",
               "test_quiet_band_flow.py", "test_funding_crash.py", "test_audit.py")


def pytest_collection_modifyitems(config, items):
    """On xdist workers: the heavy files first (HEAVY_FIRST); the tests of a file keep their order, and so do the
    other files. Every worker sorts the same collection the same way, as xdist requires."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


class _EventAcrossThreads:
    """threading.Event's set/clear/wait for an xdist worker's queue of test indices: set from execnet's receiving
    thread (a real thread), waited on in the main thread while gevent's hub keeps running there (a module fixture's
    fake servers go on answering between tests). The patched threading.Event would raise LoopExit there: nothing in
    the hub's own thread could ever set it. A gevent async watcher is the hub's thread-safe wake-up."""

    def __init__(self):
        from gevent import monkey

        self._mutex = monkey.get_original("_thread", "allocate_lock")()
        self._flag = False
        self._watcher = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._mutex:  # under the mutex: the waiter unregisters its watcher under it before closing it
            self._flag = True
            if self._watcher is not None:
                self._watcher.send()

    def clear(self) -> None:
        with self._mutex:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        import gevent
        import gevent.event

        woken = gevent.event.Event()
        watcher = gevent.get_hub().loop.async_()
        watcher.start(woken.set)
        try:
            with self._mutex:
                if self._flag:
                    return True
                self._watcher = watcher
            woken.wait(timeout)
            return self._flag
        finally:
            with self._mutex:
                self._watcher = None
            watcher.stop()
            watcher.close()


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
