"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time


def wait_for(check, timeout: float, what: str):
    """Call ``check`` until it returns something truthy and return that; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")
