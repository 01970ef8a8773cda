"""Named crash points for kill -9 tests.

`MMFLOW_CRASH_AT=<name>` makes the process SIGKILL itself the first time it
reaches that point — exactly what an OOM kill or power loss does there. Unset
(always, in production) it is a dictionary lookup and nothing else.
"""
from __future__ import annotations

import os
import signal

_TARGET = os.environ.get("MMFLOW_CRASH_AT", "")


def crash_point(name: str) -> None:
    if _TARGET and _TARGET == name:
        os.kill(os.getpid(), signal.SIGKILL)
