"""SIGTERM as a clean stop: the one rule every long-running command follows.

A supervisor (``ssp demo``, systemd, Airflow, a container runtime) stops a command with SIGTERM;
the command should then stop as cleanly as on Ctrl-C: flush, summarise, exit. Inside
:func:`stop_on_sigterm` SIGTERM runs the given handler (by default it raises KeyboardInterrupt,
so code that already handles Ctrl-C handles SIGTERM too); the previous handler comes back on leaving.
Handlers can only be set in the main thread; elsewhere (a test harness, a thread) nothing changes.

>>> import os
>>> stopped = []
>>> with stop_on_sigterm(lambda *_: stopped.append(True)):
...     os.kill(os.getpid(), signal.SIGTERM)
>>> stopped
[True]
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["raise_keyboard_interrupt", "stop_on_sigterm"]


def raise_keyboard_interrupt(*_) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_on_sigterm(handler: Callable[..., None] = raise_keyboard_interrupt,
                    signals: Sequence[signal.Signals] = (signal.SIGTERM,)) -> Iterator[None]:
    """While inside, ``signals`` (SIGTERM) run ``handler``; the previous handlers are put back on leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
