"""The crash-fuzz harness (bench/crashfuzz.py), short and seeded: the whole flow in a `serve` subprocess,
SIGKILLed at random moments (and at named crash points) at least 20 times, then every invariant checked
from the fakes' records: no violation."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import bench_result

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240611


def _harness():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import crashfuzz
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return crashfuzz


ARCHIVE_CRASH_POINTS = {"archive_segment_written", "archive_committed"}


def test_crash_point_list_matches_the_code():
    """Every named crash point in the service is one the harness may arm, and no name is made up."""
    names: set[str] = set()
    for path in ROOT.glob("**/*.py"):
        if any(part in ("tests", "bench", "sim") for part in path.relative_to(ROOT).parts):
            continue
        for name in re.findall(r'crash_point\(f?"([^"]+)"\)', path.read_text()):
            if "{row.kind}" in name:
                names |= {name.replace("{row.kind}", kind) for kind in _harness().MOVEMENT_KINDS}
            else:
                names.add(name)
    # The archive's points are armed by tests/test_archive.py (the archive killed between segment and commit);
    # the fuzz world keeps its finished orders hot, so its invariants can read every one.
    assert set(_harness().CRASH_POINTS) == names - ARCHIVE_CRASH_POINTS


def test_the_plan_is_a_function_of_the_seed():
    crashfuzz = _harness()
    one, again, other = (crashfuzz.build_plan(s, 30, 8) for s in (5, 5, 6))
    assert one.cycles == again.cycles and one.actions == again.actions and one.stories == again.stories
    assert one.actions != other.actions
    assert len(one.cycles) == 30
    assert any(c.crash_at for c in one.cycles) and any(c.startup_kill for c in one.cycles)
    kinds = {a.kind for a in crashfuzz.build_plan(1, 200, 40).actions}
    assert kinds == {"pay", "exit_memo", "add_funds", "operator_exit", "stray", "fault", "short"}


@pytest.mark.timeout(480)
def test_twenty_random_kills_break_no_invariant():
    done = subprocess.run(
        [sys.executable, "bench/crashfuzz.py", "--seed", str(SEED), "--kills", "20", "--users", "6",
         "--minutes", "6", "--final-timeout", "90", "--verbose"],
        cwd=ROOT, capture_output=True, text=True, timeout=460, check=False)
    result = bench_result(done)
    assert result["kills"] >= 20, result
    assert result["seed"] == SEED and result["repro"].startswith("python bench/crashfuzz.py --seed")
    assert done.returncode == 0
    assert sum(result["orders_by_state"].values()) >= 3, result
    assert result["stranded"] == {}
