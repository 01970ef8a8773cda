"""The world the service benches run against, in a child process of their own (the other core): the fake
Mixin (for the poller) and one fake exchange (Binance dialect, rate limit off: the fake must not be what a
bench measures), plus a small stats server the bench reads the fake's own counts and CPU from.

    python bench/<bench>.py --serve-fake ...   → fakes.serve_exchange_world(...)
    ports = fakes.wait_for_ports(port_file, proc)   → (mixin_port, exchange_port, stats_port)
    fakes.exchange_account(exchange_port)           → the [[exchanges]] table pointing at it
"""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

ACCOUNT = "binance"


def serve_exchange_world(port_file: str, keystore_path: str, key: str, secret: str, *, price_process: bool,
                         credit: dict[str, str] | None = None, prepare=None) -> None:
    """Run forever. ``price_process``: the mid moves every 0.5 s (no synthetic takers); otherwise it stays put.
    ``prepare(fx)``: called once the account is funded, before the ports are published (e.g. seed orders)."""
    import gevent

    from sim.fake_exchange import FakeExchange
    from sim.world import build_world

    world = build_world()  # the fake Mixin the poller talks to
    Path(keystore_path).write_text(json.dumps(world.keystore_dict))
    fx = FakeExchange(seed=5).start()
    fx.add_market("BTC/USDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001",
                  min_notional="5", mid="60000")
    fx.add_market("ETH/USDT", "ETH", "USDT", tick_size="0.01", step_size="0.0001", min_qty="0.0001",
                  min_notional="5", mid="3000")
    fx.add_currency("BTC", [{"network": "BTC", "withdrawFee": "0.0002", "withdrawMin": "0.001", "isDefault": True}])
    fx.add_currency("ETH", [{"network": "ETH", "withdrawFee": "0.0008", "withdrawMin": "0.0016", "isDefault": True}])
    fx.add_currency("USDT", [{"network": "ETH", "withdrawFee": "3", "withdrawMin": "10", "isDefault": True}])
    fx.add_account(key, secret)
    for currency, amount in (credit or {"BTC": "100000", "USDT": "10000000000"}).items():
        fx.credit(key, currency, amount)
    fx.rate_limit(None)
    if prepare is not None:
        prepare(fx)
    if price_process:
        fx.start_price_process(interval=0.5, vol=0.0003, taker_prob=0.0)

    def stats() -> dict:
        counts = {}
        for method, path, status in fx.requests_log:
            name = f"{method} {path}" + ("" if status < 400 else f" {status}")
            counts[name] = counts.get(name, 0) + 1
        ru = resource.getrusage(resource.RUSAGE_SELF)
        open_orders = sum(1 for o in fx.engine.orders.values()
                          if o.owner == key and o.status in ("NEW", "PARTIALLY_FILLED"))
        return {"requests": len(fx.requests_log), "by_path": counts, "cpu_s": ru.ru_utime + ru.ru_stime,
                "internal_errors": fx.internal_errors[-5:], "n_internal_errors": len(fx.internal_errors),
                "open_orders": open_orders, "mid": str(fx.mid("BTC/USDT")),
                "price_errors": fx.price_process_errors[-3:]}

    stats_port = serve_json(stats)
    Path(port_file).write_text(f"{world.fake.port} {fx.port} {stats_port}")
    while True:
        gevent.sleep(3600)


def serve_json(payload) -> int:
    """A loopback HTTP server answering every request with ``payload()`` as JSON (the fake's own counts, read
    by the bench in the other process); returns its port."""
    from gevent.pywsgi import WSGIServer

    def app(environ, start_response):
        body = json.dumps(payload(), default=str).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    return server.server_port


def wait_for_ports(port_file: Path, proc, timeout: float = 60.0,
                   what: str = "the fake exchange world") -> tuple[int, ...]:
    """The ports a fake child process published in ``port_file`` (for serve_exchange_world: mixin, exchange and
    stats ports), once it has; exits the bench if the child died or did not publish them within ``timeout``."""
    deadline = time.time() + timeout
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)
    return tuple(int(x) for x in port_file.read_text().split())


def exchange_account(exchange_port: int, key: str, secret: str) -> dict:
    """The [[exchanges]] table for the fake; the keys go through the environment like an operator's would.
    Our own limiter is set out of the way (10M weight/min): Binance's 1,200/min would cap any bench at a
    handful of orders, and the limiter has a bench of its own (gateway.py)."""
    os.environ["MMF_BENCH_KEY"], os.environ["MMF_BENCH_SECRET"] = key, secret
    return {"id": ACCOUNT, "ccxt": "binance", "api_key_env": "MMF_BENCH_KEY", "secret_env": "MMF_BENCH_SECRET",
            "urls": {"api": f"http://127.0.0.1:{exchange_port}"},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": True,
                        "adjustForTimeDifference": False, "defaultType": "spot"},
            "weight_per_minute": 10_000_000}
