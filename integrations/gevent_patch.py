"""gevent's monkey-patching, the first thing every entry point does (run.py, tests/conftest.py, the benches).

Imports nothing but the standard library's ``importlib.metadata`` (which gevent itself imports before it
patches anything), so it is safe to import before the world is patched.
"""
import importlib.metadata

__all__ = ["patch_all"]


def patch_all() -> None:
    """``gevent.monkey.patch_all()``, with the installed packages' entry points read once.

    gevent looks for plugins at each of its 25 patch events, and each look-up asks
    ``importlib.metadata.entry_points(group=...)``, which reads the metadata of every installed
    distribution again: about a quarter of a second of CPU per process with ~170 packages installed,
    paid by every `run.py` command. Here the look-ups share one reading; the same plugins are found and
    called, in the same order. The standard function is put back before this returns."""
    read_every_time = importlib.metadata.entry_points
    every = read_every_time()
    importlib.metadata.entry_points = lambda **params: every.select(**params) if params else every
    try:
        from gevent import monkey

        monkey.patch_all()
    finally:
        importlib.metadata.entry_points = read_every_time
