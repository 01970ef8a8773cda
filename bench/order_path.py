"""Order-path benchmark: CPU per cancel-replace request on BOTH sides — our ExchangeAccount (signing, sending,
reading the answer) and the fake exchange serving it (sim/fake_exchange, a child process: the other core).

    python bench/order_path.py [--requests 4000] [--callers 20] [--repeats 3]

What bench/mm_loop.py's 1 s refresh does per quote, without the rest of the service (strategy, database): each of
``--callers`` greenlets rests a bid and an ask, then replaces each, in turn, with Binance's cancel-replace
(``ExchangeAccount.replace_limit_order``, post-only), ``--requests`` in all. ``client_cpu_ms_per_request``: this
process's CPU (user + system) over the requests; ``fake_cpu_ms_per_request``: the fake's own CPU (it counts
itself, between two calls of its control port) over the requests it served. CPU figures hold under a loaded
machine (the wall time does not). Medians of ``--repeats`` runs, each with a fresh fake. Prints ONE JSON line.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fakes  # noqa: E402
import measure  # noqa: E402

KEY, SECRET = "order-path-key", "order-path-secret"
SYMBOL = "BTC/USDT"
D = Decimal


def serve_fake(port_file: str) -> None:
    import gevent
    from gevent.pywsgi import WSGIServer

    from sim.fake_exchange import FakeExchange

    fx = FakeExchange(seed=5).start()
    fx.add_market(SYMBOL, "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                  min_notional="5", mid="60000")
    fx.add_account(KEY, SECRET)
    fx.credit(KEY, "BTC", "1000")
    fx.credit(KEY, "USDT", "100000000")
    fx.rate_limit(None)
    marks = {}

    def control(environ, start_response):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        now = {"cpu_s": usage.ru_utime + usage.ru_stime, "requests": len(fx.requests_log)}
        if environ.get("PATH_INFO") == "/start":
            marks.update(now)
            body = b"{}"
        else:
            body = json.dumps({k: now[k] - marks[k] for k in now}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    server = WSGIServer(("127.0.0.1", 0), control, log=None, error_log=None)
    server.start()
    Path(port_file).write_text(f"{fx.port} {server.server_port}")
    while True:
        gevent.sleep(3600)


def run_once(requests_wanted: int, callers: int, work: Path) -> dict:
    import gevent
    import requests

    from domain.exchange_config import ExchangeAccountConfig
    from integrations.exchange.account import ExchangeAccount

    port_file = work / f"ports-{time.monotonic_ns()}"
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", "--port-file", str(port_file)])
    try:
        port, control = fakes.wait_for_ports(port_file, fake, 60, "the fake exchange")
        account = ExchangeAccount(ExchangeAccountConfig(
            account_id="bench", ccxt_id="binance", api_key=KEY, secret=SECRET, urls={"api": f"http://127.0.0.1:{port}"},
            weight_per_minute=10_000_000, max_concurrency=50))
        account.load_markets()
        quotes = {}
        for caller in range(callers):
            for side, price in (("buy", D("59000")), ("sell", D("61000"))):
                cid = f"{side[0]}{caller}-0"
                account.create_limit_order(SYMBOL, side, D("0.001"), price, client_order_id=cid)
                quotes[(caller, side)] = cid
        rounds = max(1, requests_wanted // (2 * callers))

        def caller_loop(caller: int) -> None:
            for n in range(1, rounds + 1):
                for side, price in (("buy", D("59000") - n % 50), ("sell", D("61000") + n % 50)):
                    new = f"{side[0]}{caller}-{n}"
                    out = account.replace_limit_order(SYMBOL, side, D("0.001"), price,
                                                      cancel_client_order_id=quotes[(caller, side)],
                                                      client_order_id=new)
                    if out.placed is None:
                        raise RuntimeError(f"replace refused: {out}")
                    quotes[(caller, side)] = new

        requests.get(f"http://127.0.0.1:{control}/start", timeout=10)
        cpu0, t0 = time.process_time(), time.monotonic()
        gevent.joinall([gevent.spawn(caller_loop, c) for c in range(callers)], raise_error=True)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        served = requests.get(f"http://127.0.0.1:{control}/stop", timeout=10).json()
        account.close()
        sent = rounds * callers * 2
        return {"requests": sent, "client_cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                "client_cpu_ms_per_request": round(cpu / sent * 1000, 4),
                "fake_cpu_s": round(served["cpu_s"], 3), "fake_requests": served["requests"],
                "fake_cpu_ms_per_request": round(served["cpu_s"] / max(1, served["requests"]) * 1000, 4),
                "requests_per_s": round(sent / wall, 1)}
    finally:
        fake.kill()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.port_file)
        return 0
    from loguru import logger
    logger.remove()
    logger.add(sys.stderr, level="WARNING", diagnose=False, backtrace=False)
    work = Path(tempfile.mkdtemp(prefix="mmflow-order-path-"))
    trials = [run_once(args.requests, args.callers, work) for _ in range(args.repeats)]
    keys = ("client_cpu_ms_per_request", "fake_cpu_ms_per_request", "client_cpu_s", "fake_cpu_s", "wall_s",
            "requests_per_s")
    measure.emit({"bench": "order_path", "requests": trials[0]["requests"], "callers": args.callers,
                  **{k: statistics.median(t[k] for t in trials) for k in keys},
                  "repeats": args.repeats, "trials": trials})
    return 0


if __name__ == "__main__":
    sys.exit(main())
