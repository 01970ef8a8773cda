"""The benches run and print their one JSON line with the figures the README quotes — at tiny sizes, one trial
each: these check the harness (keys, medians, CPU next to wall), never a speed."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.databases import server_url

ROOT = Path(__file__).resolve().parent.parent


def _measure():
    spec = importlib.util.spec_from_file_location("bench_measure", ROOT / "bench" / "measure.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def run_bench(*args: str, timeout: float = 240) -> dict:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"exit {done.returncode}; stdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-3000:]}"
    result = json.loads(lines[0])
    assert {"loadavg_1m", "cpus"} <= result["machine"].keys()
    return result


def test_medians_and_proc_readings():
    measure = _measure()
    trials = [{"a": 3, "b": 1.0, "ok": True, "why": "x"}, {"a": 1, "b": 3.0, "ok": False}, {"a": 2, "b": 2.0}]
    assert measure.median_of(trials) == {"a": 2, "b": 2.0}
    span = measure.start()
    sum(range(200_000))
    span.stop()
    assert span.cpu_s > 0 and span.wall_s > 0
    assert measure.process_cpu_s(os.getpid()) >= span.cpu_s * 0.5
    assert measure.rss_kib() > 1000


@pytest.mark.timeout(300)
def test_ingest_bench():
    result = run_bench("bench/ingest.py", "--snapshots", "300", "--orders", "30", "--repeats", "1")
    assert result["complete"] is True and result["database"] == "sqlite"
    assert result["e2e_per_s"] > 0 and result["raw_per_s"] > 0 and 0 < result["ratio"]
    assert result["ratio"] == pytest.approx(result["e2e_per_s"] / result["raw_per_s"], abs=1e-4)
    assert result["cpu_s"] > 0 and result["wall_s"] > 0 and len(result["trials"]) == 1


@pytest.mark.timeout(300)
@pytest.mark.skipif(server_url() is None, reason="needs MMFLOW_TEST_DATABASE_URL (a PostgreSQL server)")
def test_ingest_bench_on_postgres():
    from tests.databases import _with_database

    url = _with_database(server_url(), f"mmt_{os.getpid()}_bench_{int(time.time())}")
    result = run_bench("bench/ingest.py", "--snapshots", "200", "--orders", "20", "--repeats", "1",
                       "--database", url)
    assert result["complete"] is True and result["database"] == "postgresql"
    assert result["e2e_per_s"] > 0 and result["raw_per_s"] > 0 and result["ratio"] > 0


@pytest.mark.timeout(300)
def test_gateway_bench():
    result = run_bench("bench/gateway.py", "--callers", "5", "--seconds", "0.5", "--raw-seconds", "0.5",
                       "--repeats", "1")
    assert result["requests_per_s"] > 0 and result["unthrottled_requests_per_s"] > 0
    assert result["rejected"] == 0
    assert result["cpu_s"] > 0 and result["wall_s"] > 0 and result["unthrottled_cpu_s"] > 0


@pytest.mark.timeout(300)
def test_order_path_bench():
    result = run_bench("bench/order_path.py", "--requests", "40", "--callers", "4", "--repeats", "1")
    assert result["requests"] == 40 and result["trials"][0]["fake_requests"] >= 40
    assert result["client_cpu_ms_per_request"] > 0 and result["fake_cpu_ms_per_request"] > 0


@pytest.mark.timeout(300)
def test_mm_loop_bench():
    result = run_bench("bench/mm_loop.py", "--levels", "2", "--seconds", "1", "--warmup", "0.5", "--repeats", "1",
                       "--cycle-iterations", "200", "--tick-rounds", "2", "--tick-orders", "2", "--budget", "200")
    assert result["refresh_tolerance"] == "0"
    assert result["cycle_cpu_ms"] > 0 and result["tick_cpu_ms"] > 0
    assert result["orders_at_1s_refresh"] in (0, 2)
    run = result["runs"][0]
    assert run["n"] == 2 and ("cpu_s" in run or run["ok"] is False), run


@pytest.mark.timeout(300)
def test_recovery_bench():
    result = run_bench("bench/recovery.py", "--orders", "30", "--running", "4", "--repeats", "1",
                       "--timeout", "90", "--first-timeout", "90")
    assert result["orders"] == 30 and result["running"] == 4
    restart = result["restarts"][0]
    assert restart["ready"] is True, restart
    assert restart["recovered"] == 30 and restart["running_ready"] == 4
    assert result["restart_s"] == restart["restart_s"] > 0 and result["cpu_s"] > 0
    assert result["kib_per_order"] is not None and result["first_start"]["exchange_open_orders_after"] == 8
