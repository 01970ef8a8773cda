"""`python run.py demo` end to end, as a user runs it: users pay, trade, leave; the last stdout line is a JSON
summary; every order ends settled or refunded; nothing is stranded; and the money adds up across the run:
for every asset, what users paid in = what they got back + fees + dust + transit differences − trading result.

The demos (the default one, the one serving its API during a hold, one per HuFi venue, and — on the PostgreSQL
pass — the default story on three instances sharing it, one of them killed) start side by side in a module
fixture — most of a demo's minute is waiting on its users' script, not CPU — and each test waits for and asserts
on its own."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import signal
import socket
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.test_cluster import SKIP_WHY as CLUSTER_SKIP_WHY
from tests.test_cluster import _server as _cluster_server

ROOT = Path(__file__).resolve().parent.parent
VENUES = ("mexc", "gate", "bybit")


@dataclass
class Demo:
    """One `run.py demo` started by the module fixture: its process, its own directory, its stdout/stderr files."""
    proc: subprocess.Popen
    tmp: Path
    out_path: Path
    log_path: Path
    port: int | None = None

    def finish(self, timeout: float) -> tuple[str, str]:
        """Wait for the demo to end (killed after ``timeout`` seconds); its stdout and stderr."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.out_path.read_text(), self.log_path.read_text()


def _start(tmp: Path, args: list[str], env: dict | None = None) -> Demo:
    tmp.mkdir(parents=True, exist_ok=True)
    out_path, log_path = tmp / "demo.out", tmp / "demo.log"
    # stdout and stderr to files, not pipes: nobody reads a pipe until its test runs, and a full one blocks the demo
    with open(out_path, "w") as out, open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "run.py", "demo", *args], cwd=ROOT, stdout=out, stderr=log,
                                stdin=subprocess.DEVNULL, text=True, env=env)
    return Demo(proc, tmp, out_path, log_path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """Every demo of this module, started at once; whatever is still running at the end is killed. The API demo
    holds long enough to outlast the tests before its own (its test ends the hold with SIGTERM)."""
    root = tmp_path_factory.mktemp("demos")
    port = _free_port()
    hold_tmp = root / "hold"
    (hold_tmp / "tmp").mkdir(parents=True)
    started = {"default": _start(root / "default", ["--workdir", str(root / "default" / "work")]),
               "hold": _start(hold_tmp, ["--duration", "3", "--api", f"127.0.0.1:{port}", "--hold", "900"],
                              env=dict(os.environ, TMPDIR=str(hold_tmp / "tmp"))),
               **{venue: _start(root / venue, ["--venue", venue, "--duration", "12",
                                               "--workdir", str(root / venue / "work")]) for venue in VENUES}}
    started["hold"].port = port
    server = _cluster_server()
    if server is not None:
        started["cluster"] = _start(root / "cluster", ["--database", server, "--instances", "3", "--kill-one"])
    try:
        yield started
    finally:
        for demo in started.values():
            if demo.proc.poll() is None:
                demo.proc.kill()
                demo.proc.wait()


def assert_summary_adds_up(stdout: str) -> dict:
    """The last stdout line: every order final, nothing stranded, and per asset paid in = paid out + fees +
    dust + transit differences − trading result."""
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert set(summary["orders_by_state"]) <= {"settled", "refunded"}, summary
    assert summary["stranded"] == {}
    assert summary["all_final"] is True
    for key in ("paid_in", "paid_out", "fees"):
        assert summary[key], key
    for symbol, paid_in in summary["paid_in"].items():
        def term(name):
            return Decimal(summary[name].get(symbol, "0"))
        out = term("paid_out") + term("fees") + term("dust") + term("differences") - term("trading")
        assert Decimal(paid_in) == out, (symbol, summary)
    return summary


@pytest.mark.timeout(240)
def test_demo_ends_with_every_order_final_nothing_stranded_and_the_money_adding_up(demos):
    stdout, log = demos["default"].finish(timeout=220)
    assert demos["default"].proc.returncode == 0, log[-4000:]
    summary = assert_summary_adds_up(stdout)
    assert summary["orders_by_state"].get("settled", 0) >= 4 and summary["orders_by_state"].get("refunded", 0) >= 2
    # The story is told: users leave by memo, by an operator, by the end time, while in flight, after adding funds.
    assert "Traceback" not in log
    # The command it prints at the end works exactly as printed (no exchange key needed, none exported).
    printed = re.search(r"Inspect with: (python run\.py orders list --config \S+)", log)
    assert printed, log[-2000:]
    env = {k: v for k, v in os.environ.items() if "MMFLOW" not in k}
    listed = subprocess.run(shlex.split(printed.group(1)), cwd=ROOT, capture_output=True, text=True, env=env,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "settled" in listed.stdout and "Traceback" not in listed.stderr
    for text in ("the owner asked for an exit", "exit asked (operator)", "carried out as soon as the funds are "
                 "credited on the exchange", "the order reached its end time", "added funds credited",
                 "exit before the funds left Mixin", "settled —", "got back"):
        assert text in log, text


@pytest.mark.timeout(180)
def test_demo_serves_the_api_and_dashboard_holds_and_leaves_nothing_behind(demos):
    """`demo --api HOST:PORT --hold S`: during the hold the dashboard, /healthz, /metrics and /openapi.json are
    served, no operation answers an anonymous call with a 5xx, the printed demo-only operator token works;
    SIGTERM ends the hold (exit 0), and the temporary directory (keystore and keys included) is removed."""
    import requests

    from tests.support import wait_until

    demo = demos["hold"]
    proc, log_path = demo.proc, demo.log_path
    base = f"http://127.0.0.1:{demo.port}"
    try:
        wait_until(lambda: "stay up" in log_path.read_text() or proc.poll() is not None, timeout=150,
                   message="the demo's summary and hold")
        log = log_path.read_text()
        assert proc.poll() is None, log[-3000:]
        assert f"dashboard at {base}/" in log
        token = re.search(r"demo-only token (mmf_\S+)", log).group(1)
        assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
        page = requests.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "mmflow" in page.text
        assert "mmflow_orders" in requests.get(f"{base}/metrics", timeout=10).text
        paths = requests.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        assert len(paths) >= 10
        for path, operations in paths.items():
            if "get" in operations and "{" not in path:
                assert requests.get(base + path, timeout=10).status_code < 500, path
        orders = requests.get(f"{base}/api/v1/orders", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert orders.status_code == 200 and orders.json()["orders"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = demo.finish(timeout=60)
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["stranded"] == {}
    temp = demo.tmp / "tmp"  # the demo's TMPDIR
    assert not list(temp.glob("mmflow-demo-*")), list(temp.iterdir())
    assert "--workdir" in log_path.read_text()


@pytest.mark.timeout(240)
def test_demo_on_each_hufi_venue_joins_estimates_and_strands_nothing(demos):
    """`demo --venue mexc|gate|bybit` (short runs, side by side): the whole loop on that venue's fake, a HuFi
    campaign joined, an estimated reward from the leaderboard narrated, every order final, nothing stranded."""
    for venue in VENUES:
        out, log = demos[venue].finish(timeout=200)
        assert demos[venue].proc.returncode == 0, (venue, log[-4000:])
        summary = assert_summary_adds_up(out)
        assert summary["orders_by_state"].get("settled", 0) >= 1, (venue, summary)
        assert "Traceback" not in log
        assert f"fake {venue} at http://127.0.0.1:" in log
        assert "joined HuFi campaign" in log and "estimated reward today" in log, (venue, log[-3000:])
        assert "leaderboard: 3 participants" in log and "listed, not joined" in log, venue


@pytest.mark.timeout(400)
def test_demo_on_three_instances_with_one_killed(demos):
    """`demo --database URL --instances 3 --kill-one` (started with the others: tests/test_cluster.py's subject,
    here only so its minute overlaps theirs): the story on three `serve` instances sharing one PostgreSQL
    database, one of them killed with SIGKILL; its roles are taken over and the money still adds up."""
    if "cluster" not in demos:
        pytest.skip(CLUSTER_SKIP_WHY)
    out, log = demos["cluster"].finish(timeout=380)
    assert demos["cluster"].proc.returncode == 0, log[-4000:]
    summary = assert_summary_adds_up(out)
    assert summary["orders_by_state"].get("settled", 0) >= 4
    killed = summary["cluster"]["killed"]
    assert killed and killed not in summary["cluster"]["leases"].values()
    assert f"demo: kill -9 {killed}" in log and f"took over from {killed} role:treasury" in log
    assert "Traceback" not in log
