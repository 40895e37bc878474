"""Small helpers for the local services: ports, pid files, Java version, waiting."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ssp.errors import SspError


class InfraError(SspError, RuntimeError):
    """A local service could not be started or reached; the message says how to fix it."""


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for tests and side-by-side stacks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is still alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # a zombie child of ours still answers kill(0); reap it so it reads as dead
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return None
    except ChildProcessError:
        pass
    return pid


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log_file is not None and log_file.exists():
        tail = "\nLast lines of " + str(log_file) + ":\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
    raise InfraError(f"{what} did not come up within {timeout:.0f} s.{tail}")


def java_major_version(java: str | None = None) -> int:
    java = java or shutil.which("java")
    if java is None:
        raise InfraError(
            "Java was not found on the PATH; Kafka and Spark need Java 17 or newer. "
            "Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise InfraError(f"could not read the Java version from `{java} -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def require_java17() -> str:
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    major = java_major_version(java)
    if major < 17:
        raise InfraError(
            f"Java {major} found at {java}, but Kafka 4 and Spark 4 need Java 17 or newer. "
            "Install Java 17 (apt-get install openjdk-17-jre-headless) and point JAVA_HOME at it."
        )
    return str(java)


def ensure_port_free(host: str, port: int, service: str, setting: str) -> None:
    if port_is_open(host, port):
        raise InfraError(
            f"port {host}:{port} is already in use by another program, so {service} cannot listen there. "
            f"Stop that program or choose another port, e.g. `ssp --gin-param '{setting} = {port + 10}' infra up`."
        )
