"""Timers that tell an actor a message later: pykka has no scheduler of its own.

A timer is a small greenlet, never a sleep inside a handler, so the actor keeps
processing its inbox while the timer waits. A timer whose actor is gone is moot:
`ActorDeadError` ends it quietly.
"""
from __future__ import annotations

from typing import Any

import gevent
import pykka

__all__ = ["Timer", "send_after", "send_every"]


class Timer:
    """Handle of a pending `send_after` / `send_every`; `cancel()` stops it."""

    def __init__(self, greenlet: gevent.Greenlet) -> None:
        self._greenlet = greenlet

    def cancel(self) -> None:
        """Stop the timer; a message not yet sent is never sent. Idempotent."""
        # block=False: cancel() is called from actor handlers, which must not wait.
        self._greenlet.kill(block=False)

    @property
    def active(self) -> bool:
        """True until the timer has fired (one-shot), been cancelled, or seen its actor die."""
        return not self._greenlet.dead


def _tell(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """Tell `message`; False if the actor is dead."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def send_after(ref: pykka.ActorRef[Any], delay: float, message: Any) -> Timer:
    """Tell `message` to `ref` once, after `delay` seconds (delay <= 0: next loop turn)."""
    return Timer(gevent.spawn_later(max(delay, 0.0), _tell, ref, message))


def send_every(ref: pykka.ActorRef[Any], interval: float, message: Any) -> Timer:
    """Tell `message` to `ref` every `interval` seconds until cancelled or the actor dies.

    The first message goes out after one interval. Ticks are spaced from the
    previous send (fixed delay), so a stalled hub does not make them bunch up.
    """
    if interval <= 0:
        msg = f"send_every interval must be > 0, got {interval!r}"
        raise ValueError(msg)

    def loop() -> None:
        while True:
            gevent.sleep(interval)
            if not _tell(ref, message):
                return

    return Timer(gevent.spawn(loop))
