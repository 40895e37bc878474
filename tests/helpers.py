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


class DemoRun:
    """``ssp demo`` (or any command) as a child process whose output is read on a thread: wait until a line
    starts with ``ready_prefix``, then stop it as Ctrl-C does and get its exit code."""

    def __init__(self, argv: list[str], env: dict | None = None, ready_prefix: str = "demo ready") -> None:
        import subprocess
        import threading

        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.output: list[str] = []
        self.ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith(ready_prefix):
                    self.ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_ready(self, timeout: float) -> bool:
        """Whether the ready line came within ``timeout`` seconds with the process still running."""
        return self.ready.wait(timeout) and self.process.poll() is None

    def stop(self, timeout: float = 120) -> int:
        """SIGINT (what Ctrl-C sends) if it still runs, then its exit code; SIGKILL if it does not stop."""
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.reader.join(10)
        return code
