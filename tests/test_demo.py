"""`python run.py demo` end to end, as a user runs it: users pay, trade, leave; the last stdout line is a JSON
summary; every order ends settled or refunded; nothing is stranded; and the money adds up across the run:
for every asset, what users paid in = what they got back + fees + dust + transit differences − trading result."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(240)
def test_demo_ends_with_every_order_final_nothing_stranded_and_the_money_adding_up(tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "demo", "--workdir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary["orders_by_state"]) <= {"settled", "refunded"}, summary
    assert summary["orders_by_state"].get("settled", 0) >= 4 and summary["orders_by_state"].get("refunded", 0) >= 2
    assert summary["stranded"] == {}
    assert summary["all_final"] is True
    for key in ("paid_in", "paid_out", "fees"):
        assert summary[key], key
    for symbol, paid_in in summary["paid_in"].items():
        def term(name):
            return Decimal(summary[name].get(symbol, "0"))
        out = term("paid_out") + term("fees") + term("dust") + term("differences") - term("trading")
        assert Decimal(paid_in) == out, (symbol, summary)
    # The story is told: users leave by memo, by an operator, by the end time, while in flight, after adding funds.
    log = proc.stderr
    for text in ("the owner asked for an exit", "exit asked (operator)", "carried out as soon as the funds are "
                 "credited on the exchange", "the order reached its end time", "added funds credited",
                 "exit before the funds left Mixin", "settled —", "got back"):
        assert text in log, text
