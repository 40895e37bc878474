"""``ssp demo``: the whole cycle on the embedded default, from an empty machine to a live dashboard.

Batch steps run in this process, one after the other, each with its own progress: the local
stack, a burst of synthetic tweets into Kafka, the ingest stream until it is idle, dataset
preparation, weak labelling and a first model. Then the long-running parts start as child
processes, each logging to its own file: the model server, the live classification stream, a
slow synthetic stream for it to classify, the dashboard and the tagger. The command prints their
URLs and waits; Ctrl-C (or SIGTERM, or ``--duration``) stops the children in reverse order, each
with SIGTERM first and SIGKILL only if it does not stop in time. The local stack stays up for the
next run (``ssp infra down`` stops it).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from ssp.config import default_state_dir

STOP_TIMEOUT_SECONDS = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its whole life
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env}, start_new_session=True,  # Ctrl-C reaches us, we stop them in order
        )
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def ssp_argv(*args: str, gin_files: tuple[str, ...] = (), gin_params: tuple[str, ...] = ()) -> list[str]:
    """This interpreter running ``ssp`` with the same gin configuration as the demo itself."""
    argv = [sys.executable, "-m", "ssp.cli"]
    for path in gin_files:
        argv += ["--gin-file", path]
    for binding in gin_params:
        argv += ["--gin-param", binding]
    return [*argv, *args]


def wait_for_http(url: str, child: Child, timeout: float) -> None:
    """Until ``url`` answers (any HTTP status), or fail naming the child and its last log lines."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise click.ClickException(f"{child.name} stopped while starting; the end of {child.log_path}:\n"
                                       f"{child.tail()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise click.ClickException(f"{child.name} did not answer at {url} within {timeout:.0f} s; see {child.log_path}")


def run_services(children: list[Child], urls: dict[str, str], duration: float | None, echo) -> None:
    """Wait until Ctrl-C, SIGTERM, ``duration`` or a child dying; then stop them all, last started first."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for name, url in urls.items():
        echo(f"  {name:<22s} {url}")
    echo("running; Ctrl-C stops everything" + (f" (or after {duration:.0f} s)" if duration else ""))
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not stop.is_set():
            dead = [c for c in children if not c.alive()]
            if dead:
                echo(f"{dead[0].name} stopped (exit code {dead[0].process.returncode}); the end of "
                     f"{dead[0].log_path}:\n{dead[0].tail()}")
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.5)
    except KeyboardInterrupt:
        echo("Ctrl-C: stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        for child in reversed(children):
            code = child.stop()
            echo(f"  stopped {child.name} (exit code {code})")


def new_token() -> str:
    return secrets.token_urlsafe(16)


def demo_log_dir() -> Path:
    return default_state_dir() / "logs" / "demo"
