"""What every bench measures, in one place: CPU and wall time of the process doing the work,
repeated, with medians — so no bench reports a wall-clock rate alone on a loaded machine.

- ``Span``: CPU seconds (``time.process_time()``, this process: user + system) and wall seconds
  (``time.perf_counter()``) between ``start()`` and ``stop()``.
- ``process_cpu_s(pid)`` / ``rss_kib(pid)``: another live process's CPU and resident memory from
  ``/proc`` (Linux; stdlib only — psutil is not a dependency), for work done in a child.
- ``median_of(trials)``: the median of each numeric key over repeated trials, the trials kept as
  they were measured so the spread is visible.
- ``emit(result)``: the one JSON line a bench prints (plus the load it ran under).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Span:
    cpu0: float = field(default_factory=time.process_time)
    wall0: float = field(default_factory=time.perf_counter)
    cpu_s: float | None = None
    wall_s: float | None = None

    def stop(self) -> "Span":
        self.cpu_s = time.process_time() - self.cpu0
        self.wall_s = time.perf_counter() - self.wall0
        return self

    def as_dict(self) -> dict:
        return {"cpu_s": round(self.cpu_s, 3), "wall_s": round(self.wall_s, 3)}


def start() -> Span:
    return Span()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (its threads included, its children not)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15 of stat(5))


def rss_kib(pid: int | None = None) -> int:
    """Resident memory now (not the peak), KiB."""
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def median_of(trials: list[dict]) -> dict:
    """Median of every numeric (non-bool) key present in all trials."""
    keys = [k for k, v in trials[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and all(isinstance(t.get(k), (int, float)) for t in trials)]
    out = {}
    for key in keys:
        value = statistics.median(t[key] for t in trials)
        out[key] = round(value, 4) if isinstance(value, float) else value
    return out


def load() -> dict:
    """What else the machine was doing: load averages and cores, so a number can be read in context."""
    one, five, _ = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "cpus": os.cpu_count(),
            "nice": os.nice(0)}


def emit(result: dict) -> None:
    result = dict(result)
    result.setdefault("machine", load())
    print(json.dumps(result), flush=True)


def last_json_line(text: str) -> dict | None:
    """The last line of a child's stdout that is a JSON object (children print theirs last)."""
    for line in reversed((text or "").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def fail(message: str) -> int:
    """A bench that cannot run says why in one line (stderr) and exits 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2
