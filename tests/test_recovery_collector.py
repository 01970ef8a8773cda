"""A large recovery runs with the cyclic garbage collector paused, then collects once and freezes what it built
(actors/orders.py: OrderSupervisor._pause_collector / _resume_collector)."""
from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest

from actors.orders import OrderSupervisor


@pytest.fixture
def supervisor():
    was = gc.isenabled()
    gc.enable()
    yield SimpleNamespace(_collector_paused=None)
    gc.unfreeze()   # the test process's objects back under the collector (nothing else here freezes)
    (gc.enable if was else gc.disable)()


def test_paused_while_recovering_then_collected_and_frozen(supervisor):
    OrderSupervisor._pause_collector(supervisor)
    assert not gc.isenabled()
    OrderSupervisor._pause_collector(supervisor)       # a second recovery meanwhile: still one pause
    cycle = []
    cycle.append(cycle)
    del cycle                                           # garbage the paused collector left
    frozen_before = gc.get_freeze_count()
    OrderSupervisor._resume_collector(supervisor, freeze=True)
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen_before
    assert gc.garbage == []


def test_a_stop_mid_recovery_gives_the_collector_back_as_it_was(supervisor):
    gc.disable()                                         # someone had it off: it stays off
    frozen = gc.get_freeze_count()
    OrderSupervisor._pause_collector(supervisor)
    OrderSupervisor._resume_collector(supervisor, freeze=False)
    assert not gc.isenabled() and gc.get_freeze_count() == frozen
    OrderSupervisor._resume_collector(supervisor, freeze=True)   # nothing paused: nothing done
    assert gc.get_freeze_count() == frozen
