"""The test databases' keeper (tests/databases.py starts it once per session on PostgreSQL): a plain process
(no gevent) that creates test databases ahead of need and drops used ones in the background.

Why: on PostgreSQL 15 ``CREATE DATABASE … TEMPLATE`` costs a few hundred milliseconds (the template's pages go
through the WAL) and ``DROP DATABASE`` about a second (it forces a checkpoint). Paid inside each test that would
be most of the suite's time on PostgreSQL; here a thread keeps a few databases ready, others drop the used
ones, and a test waits only when the keeper falls behind.

Protocol, one line each on stdin / stdout:
  ``take``        → the name of a database copied from the template (mmflow's schema, no rows)
  ``drop NAME``   → dropped later (``WITH (FORCE)``: sessions still on it are ended)
  end of input    → the databases not taken are dropped, then every queued drop; then the keeper exits.

Every database it makes is tuned for tests only: ``synchronous_commit = off`` (a commit does not wait for its WAL
to reach the disk; only a crash of the server itself could lose the last commits, which no test does).

Usage: python tests/database_keeper.py SERVER_URL TEMPLATE NAME_PREFIX [STOCK]
"""
from __future__ import annotations

import itertools
import queue
import sys
import threading

import psycopg

_DONE = object()
DROPPERS = 3


def _admin_connection(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    conn.execute("SET synchronous_commit = off")  # this session's catalog commits need not wait for the disk
    return conn


def _create(url: str, template: str, names, stock: queue.Queue, stop: threading.Event) -> None:
    conn = None
    for name in names:
        if stop.is_set():
            break
        try:
            if conn is None or conn.closed:
                conn = _admin_connection(url)
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
            got = name
        except Exception as exc:  # noqa: BLE001 - told to the test that takes it
            got = exc
            if conn is not None:
                conn.close()
        stock.put(got)  # blocks while the stock is full
    if conn is not None:
        conn.close()


def _drop(url: str, drops: queue.Queue) -> None:
    conn = _admin_connection(url)
    try:
        while (name := drops.get()) is not _DONE:
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.OperationalError:
                conn.close()
                conn = _admin_connection(url)
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def main(url: str, template: str, prefix: str, stock_size: int = 3) -> None:
    stock: queue.Queue = queue.Queue(maxsize=stock_size)
    drops: queue.Queue = queue.Queue()
    stop = threading.Event()
    names = (f"{prefix}{n}" for n in itertools.count(1))
    creator = threading.Thread(target=_create, args=(url, template, names, stock, stop), daemon=True)
    # Drops side by side: each waits for a checkpoint, and requests that meet share one.
    droppers = [threading.Thread(target=_drop, args=(url, drops), daemon=True) for _ in range(DROPPERS)]
    creator.start()
    for dropper in droppers:
        dropper.start()
    for line in sys.stdin:
        command, _, name = line.strip().partition(" ")
        if command == "take":
            got = stock.get()
            print(f"error {' '.join(str(got).split())}" if isinstance(got, Exception) else got, flush=True)
        elif command == "drop" and name:
            drops.put(name)
    stop.set()
    while creator.is_alive() or not stock.empty():  # the creator may be blocked on a full stock: keep emptying
        try:
            got = stock.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(got, str):
            drops.put(got)
    for dropper in droppers:
        drops.put(_DONE)
    for dropper in droppers:
        dropper.join()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:5]))
