"""The local PostgreSQL asks every connection for a password, and the apps' role cannot reach the server's OS.

The integration tests need the server the ``stack`` fixture starts (not ``SSP_TEST_DATABASE_URL``):
they read its password files and connect past the apps' URL.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from ssp.config import (
    POSTGRES_APP_PASSWORD_FILE,
    POSTGRES_SUPERUSER_PASSWORD_FILE,
    InfraConfig,
    postgres_password_path,
    postgres_url,
)
from ssp.infra.postgres_server import hba_requires_passwords


def test_postgres_url_percent_encodes_user_and_password():
    url = postgres_url("app", "p@ss:w/rd%?#", "127.0.0.1", 5432, "sparkstreamingdb")
    assert url == "postgresql://app:p%40ss%3Aw%2Frd%25%3F%23@127.0.0.1:5432/sparkstreamingdb"
    parts = urlsplit(url)
    assert unquote(parts.password) == "p@ss:w/rd%?#"
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", 5432, "/sparkstreamingdb")


def test_local_database_url_reads_the_app_password_from_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SSP_DATABASE_URL", raising=False)
    config = InfraConfig(postgres_port=6543)
    assert config.local_database_url_in(tmp_path) == "postgresql://ssp_app@127.0.0.1:6543/sparkstreamingdb"
    path = postgres_password_path(tmp_path, POSTGRES_APP_PASSWORD_FILE)
    path.parent.mkdir()
    path.write_text("a b/c\n")
    assert config.local_database_url_in(tmp_path) == "postgresql://ssp_app:a%20b%2Fc@127.0.0.1:6543/sparkstreamingdb"
    monkeypatch.setenv("SSP_STATE_DIR", str(tmp_path))
    assert config.database_url == config.local_database_url_in(tmp_path)
    monkeypatch.setenv("SSP_DATABASE_URL", "postgresql://someone:secret@db.example:5432/elsewhere")
    assert config.database_url == "postgresql://someone:secret@db.example:5432/elsewhere"


def test_hba_requires_passwords(tmp_path):
    hba = tmp_path / "pg_hba.conf"
    hba.write_text("# trust is mentioned in a comment\nlocal all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
    assert hba_requires_passwords(hba)
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    assert not hba_requires_passwords(hba)


@pytest.fixture
def local_server(stack):
    """The state folder of the server the stack fixture started; skips when the tests use another database."""
    if os.environ.get("SSP_TEST_DATABASE_URL"):
        pytest.skip("SSP_TEST_DATABASE_URL points the tests at a database ssp did not start")
    return Path(os.environ["SSP_STATE_DIR"])


def _password(state_dir: Path, filename: str) -> str:
    return postgres_password_path(state_dir, filename).read_text().strip()


@pytest.mark.integration
def test_password_files_are_private(local_server):
    for filename in (POSTGRES_SUPERUSER_PASSWORD_FILE, POSTGRES_APP_PASSWORD_FILE):
        path = postgres_password_path(local_server, filename)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert len(path.read_text().strip()) >= 32
    assert not (local_server / "postgres" / "initdb.pwfile").exists()


@pytest.mark.integration
@pytest.mark.parametrize("via", ["tcp", "socket"])
def test_a_connection_without_the_password_is_refused(stack, local_server, via):
    import psycopg2

    host = stack.postgres_host if via == "tcp" else str(local_server / "postgres" / "socket")
    for user in (stack.postgres_user, stack.postgres_superuser):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host=host, port=stack.postgres_port, user=user, dbname=stack.postgres_db,
                             connect_timeout=5)
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host=host, port=stack.postgres_port, user=user, password="wrong",
                             dbname=stack.postgres_db, connect_timeout=5)


@pytest.mark.integration
def test_the_apps_role_connects_with_its_password_and_has_no_superuser_rights(stack, local_server):
    import psycopg2

    assert os.environ["SSP_DATABASE_URL"] == stack.local_database_url_in(local_server)
    conn = psycopg2.connect(host=stack.postgres_host, port=stack.postgres_port, user=stack.postgres_user,
                            password=_password(local_server, POSTGRES_APP_PASSWORD_FILE), dbname=stack.postgres_db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False, False, False)
            for role in ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"):
                cur.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (role,))
                assert cur.fetchone() == (False,), role
            cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
            assert cur.fetchone() == (stack.postgres_user,)
            # it owns the database, so every stage can create its tables; the tagger's extension is there
            cur.execute("CREATE TABLE ssp_security_probe (id int)")
            cur.execute("DROP TABLE ssp_security_probe")
            cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
            assert cur.fetchone() == (1,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("COPY (SELECT 1) TO PROGRAM 'true'")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("COPY (SELECT 1) TO '/tmp/ssp_security_probe'")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT pg_read_file('pg_hba.conf')")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("ALTER ROLE current_user SUPERUSER")
    finally:
        conn.close()


@pytest.mark.integration
def test_the_superuser_connects_with_its_password(stack, local_server):
    import psycopg2

    conn = psycopg2.connect(host=stack.postgres_host, port=stack.postgres_port, user=stack.postgres_superuser,
                            password=_password(local_server, POSTGRES_SUPERUSER_PASSWORD_FILE), dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (True,)
    finally:
        conn.close()


@pytest.mark.integration
def test_a_data_folder_set_up_without_passwords_is_secured_on_start(tmp_path, monkeypatch):
    """What an older ssp left behind (initdb --auth=trust, tables owned by the superuser) keeps its tables,
    which the apps' role then owns, and stops letting anyone in without a password."""
    import psycopg2

    from ssp.infra.postgres_server import PostgresServer
    from ssp.infra.process import free_port

    monkeypatch.delenv("SSP_DATABASE_URL", raising=False)
    config = InfraConfig(postgres_port=free_port())
    server = PostgresServer(config, tmp_path)

    def trust_initdb(self, bin_dir, user):
        done = self._run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", config.postgres_superuser,
                          "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"], user)
        assert done.returncode == 0, done.stderr

    def trust_connect(dbname):
        return psycopg2.connect(host=config.postgres_host, port=config.postgres_port, user=config.postgres_superuser,
                                dbname=dbname)

    def old_tables(self):
        conn = trust_connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {config.postgres_db}")
        conn.close()
        conn = trust_connect(config.postgres_db)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE old_tweets (n serial PRIMARY KEY, text text)")
            cur.execute("INSERT INTO old_tweets (text) VALUES ('kept')")
            cur.execute("CREATE VIEW old_view AS SELECT text FROM old_tweets")
            cur.execute("CREATE SEQUENCE old_counter")
            cur.execute("CREATE FUNCTION old_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            cur.execute("CREATE TYPE old_mood AS ENUM ('ok')")
        conn.close()

    with monkeypatch.context() as old_ssp:
        old_ssp.setattr(PostgresServer, "_initdb", trust_initdb)
        old_ssp.setattr(PostgresServer, "_secure_passwordless_cluster", lambda *args: None)
        old_ssp.setattr(PostgresServer, "ensure_database", old_tables)
        server.start()
        server.stop()
    assert not server.superuser_password_file.exists()
    assert not hba_requires_passwords(server.data_dir / "pg_hba.conf")
    try:
        assert "passwords now required" in server.start()
        assert hba_requires_passwords(server.data_dir / "pg_hba.conf")
        for path in (server.superuser_password_file, server.app_password_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(psycopg2.OperationalError, match="password"):
            trust_connect(config.postgres_db)
        conn = psycopg2.connect(server.database_url)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO old_tweets (text) VALUES ('new') RETURNING n")
            assert cur.fetchone() == (2,)
            cur.execute("SELECT text FROM old_view ORDER BY text")
            assert cur.fetchall() == [("kept",), ("new",)]
            cur.execute("SELECT nextval('old_counter'), old_fn(), 'ok'::old_mood::text")
            assert cur.fetchone() == (1, 1, "ok")
            cur.execute("DROP VIEW old_view")
            cur.execute("DROP TABLE old_tweets")
            cur.execute("DROP SEQUENCE old_counter")
            cur.execute("DROP FUNCTION old_fn()")
            cur.execute("DROP TYPE old_mood")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("COPY (SELECT 1) TO PROGRAM 'true'")
        conn.close()
        # a second start finds it secured and changes nothing
        server.stop()
        assert "passwords now required" not in server.start()
        psycopg2.connect(server.database_url).close()
    finally:
        server.stop()
