"""``ssp infra``: the local stack (Kafka in KRaft mode, PostgreSQL, the Spark connector jars)."""

from __future__ import annotations

import json
import time

import click

from ssp.errors import SspError


@click.group("infra")
def infra() -> None:
    """The local stack: Kafka (KRaft), PostgreSQL and the Spark connector jars."""


@infra.command("up")
def infra_up() -> None:
    """Start Kafka and PostgreSQL (idempotent: running services are left alone)."""
    from ssp.infra.stack import LocalStack

    stack = LocalStack.from_config()
    start = time.monotonic()
    try:
        for line in stack.up():
            click.echo(line, err=True)
    except OSError as err:  # an InfraError is an SspError and is shown as it is
        raise SspError(str(err)) from err
    status = stack.status()
    click.echo(
        f"stack up in {time.monotonic() - start:.1f} s: kafka {status['kafka_bootstrap']}, "
        f"database {status['database_url']}"
    )


@infra.command("down")
def infra_down() -> None:
    """Stop the Kafka broker and the PostgreSQL server that ssp started."""
    from ssp.infra.stack import LocalStack

    for line in LocalStack.from_config().down():
        click.echo(line)


@infra.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def infra_status(as_json: bool) -> None:
    """Say whether the services run and where they listen."""
    from ssp.infra.stack import LocalStack

    status = LocalStack.from_config().status()
    if as_json:
        click.echo(json.dumps(status))
        return
    kafka = "running" if status["kafka"]["running"] else "stopped"
    postgres = "running" if status["postgres"]["running"] else "stopped"
    click.echo(f"kafka     {kafka:8} {status['kafka_bootstrap']}")
    click.echo(f"postgres  {postgres:8} {status['database_url']}")
    click.echo(f"spark     master   {status['spark_master']}")
    click.echo(f"state     {status['state_dir']}")


@infra.command("fetch")
def infra_fetch() -> None:
    """Fetch the pinned Kafka and Spark connector jars into the cache (done by `make install`)."""
    from ssp.infra.stack import LocalStack

    click.echo("fetched " + ", ".join(LocalStack.from_config().fetch()))
