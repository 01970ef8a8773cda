"""Gateway benchmark: requests/s through ONE ExchangeAccount to the fake exchange, 1,000 concurrent callers.

    python bench/gateway.py [--callers 1000] [--seconds 10] [--limit 6000] [--raw-seconds 5] [--repeats 3]

Phase 1 (the headline): the fake enforces Binance's REQUEST_WEIGHT of ``--limit`` per minute
(429, then 418 bans) and the account is configured with exactly that ``weight_per_minute``.
1,000 greenlets loop over a market maker's mix (fetch_ticker / fetch_order_book(20) /
fetch_open_orders: weights 2 / 5 / 6) for ``--seconds``. ``rejected`` is what the FAKE counted as
429 + 418 (target 0); ``budget_used`` is the weight sent over the weight the limit allows in
that time (close to 1 = the limiter leaves little on the table; its burst makes it slightly above
1 over a window shorter than a minute). Latencies include the wait in the limiter's queue, which
with 1,000 callers and a rate limit is most of it; ``mean_http_ms`` is the HTTP part alone.

Phase 2 (``unthrottled_*``): no limit anywhere, same callers and mix: what the gateway itself
(ccxt signing/parsing under gevent, 50 connections) can push.

The fake runs in a child process (the other core); it also serves its ``weight_stats`` as JSON on
a second port so the parent reads the exchange's own 429/418 counts. Prints ONE JSON line.

Each phase runs ``--repeats`` times (default 3), each with a fresh fake (a fresh weight window); the
headline figures are medians, ``trials`` lists every run. ``cpu_s`` / ``wall_s``: CPU of this process
(the gateway side: ccxt, limiter, gevent) and wall time of the phase's window; ``cpu_ms_per_request``
is their ratio to completed requests; ``fake_cpu_s`` is the fake exchange's own CPU (another process).
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
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

KEY, SECRET = "bench-key", "bench-secret"
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def serve_fake(limit: int | None, port_file: str) -> None:
    import gevent
    from sim.fake_exchange import FakeExchange

    fx = FakeExchange(seed=42).start()
    fx.add_market("BTC/USDT", "BTC", "USDT", mid="60000")
    fx.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.01", step_size="0.0001", min_qty="0.0001", mid="3000")
    fx.add_currency("USDT", [{"network": "TRX", "withdrawFee": "1", "withdrawMin": "10", "isDefault": True}])
    fx.add_account(KEY, SECRET)
    fx.credit(KEY, "USDT", "1000000")
    fx.credit(KEY, "BTC", "10")
    fx.credit(KEY, "ETH", "100")
    fx.rate_limit(limit, ban_after=2, ban_seconds=120)

    stats_port = fakes.serve_json(lambda: fx.weight_stats)
    Path(port_file).write_text(f"{fx.port} {stats_port}")
    while True:
        gevent.sleep(3600)


def start_fake(limit: int | None, work: Path) -> tuple[subprocess.Popen, int, int]:
    port_file = work / f"port-{limit}"
    port_file.unlink(missing_ok=True)  # a previous trial's
    args = [sys.executable, __file__, "--serve-fake", "--port-file", str(port_file)]
    if limit is not None:
        args += ["--limit", str(limit)]
    proc = subprocess.Popen(args)
    port, stats_port = fakes.wait_for_ports(port_file, proc, 30, "the fake exchange")
    return proc, port, stats_port


def run_phase(port: int, stats_port: int, *, weight_per_minute: int, callers: int, seconds: float,
              fake_pid: int) -> dict:
    import gevent
    import requests

    from domain.exchange_config import ExchangeAccountConfig
    from integrations.exchange.account import ExchangeAccount
    from integrations.exchange.errors import ExchangeError

    cfg = ExchangeAccountConfig(account_id="bench", ccxt_id="binance", api_key=KEY, secret=SECRET,
                                urls={"api": f"http://127.0.0.1:{port}"}, weight_per_minute=weight_per_minute,
                                max_concurrency=50)
    account = ExchangeAccount(cfg)
    account.load_markets()
    for i, symbol in enumerate(SYMBOLS):  # a few resting quotes so open orders are not empty
        mid = account.fetch_ticker(symbol).last
        for k in range(3):
            account.create_limit_order(symbol, "buy", Decimal("0.01") if i else Decimal("0.001"),
                                       mid * Decimal(str(0.99 - 0.01 * k)), client_order_id=f"bench-{i}-{k}")

    ops = (
        (lambda s: account.fetch_ticker(s)),
        (lambda s: account.fetch_order_book(s, 20)),
        (lambda s: account.fetch_open_orders(s)),
    )
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.monotonic() + seconds
    base = account.stats
    base_weight = requests.get(f"http://127.0.0.1:{stats_port}", timeout=5).json()["api_total"]

    def caller(i: int) -> None:
        n = i
        while time.monotonic() < stop_at:
            n += 1
            started = time.monotonic()
            try:
                ops[n % 3](SYMBOLS[n % 2])
            except ExchangeError as exc:
                errors[exc.kind] = errors.get(exc.kind, 0) + 1
                continue
            finished = time.monotonic()
            if finished <= stop_at:
                latencies.append(finished - started)

    fake_cpu0 = measure.process_cpu_s(fake_pid)
    span = measure.start()
    t0 = time.monotonic()
    greenlets = [gevent.spawn(caller, i) for i in range(callers)]
    gevent.sleep(max(0.0, stop_at - time.monotonic()))
    elapsed = time.monotonic() - t0
    span.stop()
    fake_cpu = measure.process_cpu_s(fake_pid) - fake_cpu0
    gevent.killall(greenlets, block=True, timeout=10)  # the ones still queued in the limiter
    fake = requests.get(f"http://127.0.0.1:{stats_port}", timeout=5).json()
    st = account.stats
    account.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else 0.0

    requests_done = st.requests - base.requests
    return {
        "completed": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "weight_per_s": round((fake["api_total"] - base_weight) / elapsed, 1),
        "rejected": fake["count_429"] + fake["count_418"],
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_http_ms": round((st.http_seconds - base.http_seconds) / max(1, requests_done) * 1000, 2),
        "penalties": st.penalties,
        "errors": errors,
        "max_queued": account.limiter.stats.max_queued,
        "cpu_s": round(span.cpu_s, 3),
        "wall_s": round(span.wall_s, 3),
        "cpu_ms_per_request": round(span.cpu_s / max(1, len(latencies)) * 1000, 3),
        "fake_cpu_s": round(fake_cpu, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=6000, help="REQUEST_WEIGHT per minute the fake enforces")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.limit if "--limit" in sys.argv else None, args.port_file)
        return 0

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING", diagnose=False, backtrace=False)
    work = Path(tempfile.mkdtemp(prefix="mmflow-bench-gw-"))
    wall0 = time.monotonic()

    def phase(limit: int | None, seconds: float) -> dict:
        proc, port, stats_port = start_fake(limit, work)
        try:
            return run_phase(port, stats_port, weight_per_minute=limit or 10**9, callers=args.callers,
                             seconds=seconds, fake_pid=proc.pid)
        finally:
            proc.kill()
            proc.wait()

    limited_trials = [phase(args.limit, args.seconds) for _ in range(args.repeats)]
    raw_trials = [phase(None, args.raw_seconds) for _ in range(args.repeats)] if args.raw_seconds > 0 else []
    limited = measure.median_of(limited_trials)
    raw = measure.median_of(raw_trials) if raw_trials else {}

    allowed_per_s = args.limit / 60.0
    out = {
        "bench": "gateway",
        "callers": args.callers,
        "seconds": args.seconds,
        "weight_per_minute": args.limit,
        "requests_per_s": limited["requests_per_s"],
        "rejected": limited["rejected"],
        "p50_ms": limited["p50_ms"],
        "p99_ms": limited["p99_ms"],
        "weight_per_s": limited["weight_per_s"],
        "budget_used": round(limited["weight_per_s"] / allowed_per_s, 3),
        "mean_http_ms": limited["mean_http_ms"],
        "cpu_s": limited["cpu_s"],
        "wall_s": limited["wall_s"],
        "fake_cpu_s": limited["fake_cpu_s"],
        "unthrottled_requests_per_s": raw.get("requests_per_s"),
        "unthrottled_cpu_ms_per_request": raw.get("cpu_ms_per_request"),
        "unthrottled_p50_ms": raw.get("p50_ms"),
        "unthrottled_p99_ms": raw.get("p99_ms"),
        "unthrottled_mean_http_ms": raw.get("mean_http_ms"),
        "unthrottled_cpu_s": raw.get("cpu_s"),
        "unthrottled_wall_s": raw.get("wall_s"),
        "unthrottled_fake_cpu_s": raw.get("fake_cpu_s"),
        "repeats": args.repeats,
        "trials": limited_trials,
        "unthrottled_trials": raw_trials,
        "bench_wall_s": round(time.monotonic() - wall0, 1),
    }
    measure.emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
