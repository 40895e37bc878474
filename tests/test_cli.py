"""The ``ssp`` command: help everywhere, clear errors, gin overrides, the stack's status."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ssp.cli import main
from ssp.config import ClassifyConfig, IngestConfig, LabelConfig, TrainConfig, load_config


def _all_commands(group, path=()):
    """Every command and group under ``ssp``, so a new command cannot ship without --help."""
    yield list(path)
    for name, command in getattr(group, "commands", {}).items():
        yield from _all_commands(command, (*path, name))


COMMANDS = list(_all_commands(main))
EXPECTED = {"infra up", "produce", "ingest", "demo", "dataset prepare", "label", "label evaluate", "train", "serve",
            "classify", "dashboard", "tagger", "al retrain", "al simulate", "cluster stream", "cluster show",
            "cluster view", "cluster plot"}


def test_the_stage_commands_are_registered():
    assert EXPECTED <= {" ".join(c) for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ssp")
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_gin_param_overrides_the_default_file():
    load_config([], ["DatasetConfig.version = 3", "DatasetConfig.raw_table_prefix = 'other'"])
    try:
        assert (IngestConfig().version, IngestConfig().table_prefix) == (3, "other")
        assert LabelConfig().version == TrainConfig().version == ClassifyConfig().version == 3
        assert IngestConfig(version=5).version == 5  # a command's --version, for that command
    finally:
        load_config()
    assert IngestConfig().version == 0


def test_the_dataset_version_is_one_setting():
    """The stages read the version from DatasetConfig; binding it on another stage is refused, by name."""
    from ssp.config import ConfigError

    for binding in ("IngestConfig.version = 2", "TrainConfig.version = 2", "IngestConfig.table_prefix = 'x'"):
        with pytest.raises(ConfigError, match=binding.split(" = ")[0]):
            load_config([], [binding])
    load_config()


def test_bad_gin_input_is_named():
    result = CliRunner().invoke(main, ["--gin-file", "/nonexistent.gin", "infra", "status"])
    assert result.exit_code != 0 and "/nonexistent.gin" in result.output
    result = CliRunner().invoke(main, ["--gin-param", "NoSuchThing.x = 1", "infra", "status"])
    assert result.exit_code != 0 and "NoSuchThing" in result.output


def test_ingest_refuses_unsafe_table_prefix_before_starting_spark():
    result = CliRunner().invoke(main, ["ingest", "--table-prefix", "raw; drop table users", "--max-records", "1"])
    assert result.exit_code != 0
    assert "'raw; drop table users' is not a safe SQL identifier" in result.output


def test_replay_needs_a_path():
    result = CliRunner().invoke(main, ["produce", "--source", "replay"])
    assert result.exit_code != 0 and "--path" in result.output


def _ssp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssp.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.integration
def test_infra_up_status_down_is_idempotent(tmp_path):
    from ssp.infra.process import free_port

    ports = [free_port(), free_port(), free_port()]
    gin = ["--gin-param", f"InfraConfig.kafka_port = {ports[0]}",
           "--gin-param", f"InfraConfig.kafka_controller_port = {ports[1]}",
           "--gin-param", f"InfraConfig.postgres_port = {ports[2]}"]
    env = {"SSP_STATE_DIR": str(tmp_path / "state"), "SSP_KAFKA_BOOTSTRAP": "", "SSP_DATABASE_URL": ""}
    try:
        first = _ssp(*gin, "infra", "up", env=env)
        assert first.returncode == 0, first.stderr
        second = _ssp(*gin, "infra", "up", env=env)
        assert second.returncode == 0 and "already running" in second.stderr
        status = json.loads(_ssp(*gin, "infra", "status", "--json", env=env).stdout)
        assert status["kafka_bootstrap"] == f"127.0.0.1:{ports[0]}"
        assert status["database_url"] == f"postgresql://ssp_app:***@127.0.0.1:{ports[2]}/sparkstreamingdb"
        assert status["kafka"]["running"] and status["postgres"]["running"]
    finally:
        down = _ssp(*gin, "infra", "down", env=env)
    assert down.returncode == 0, down.stderr
    status = json.loads(_ssp(*gin, "infra", "status", "--json", env=env).stdout)
    assert not status["kafka"]["running"] and not status["postgres"]["running"]


@pytest.mark.integration
def test_port_in_use_is_reported_with_a_fix(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = _ssp("--gin-param", f"InfraConfig.kafka_port = {port}", "infra", "up",
                      env={"SSP_STATE_DIR": str(tmp_path), "SSP_KAFKA_BOOTSTRAP": "", "SSP_DATABASE_URL": ""})
    assert result.returncode != 0
    assert f"port 127.0.0.1:{port} is already in use" in result.stderr
    assert "InfraConfig.kafka_port" in result.stderr


def test_a_state_folder_too_long_for_postgres_socket_is_refused_before_anything_starts(tmp_path):
    state = tmp_path / ("s" * 100)
    result = _ssp("infra", "up", env={"SSP_STATE_DIR": str(state), "SSP_KAFKA_BOOTSTRAP": "", "SSP_DATABASE_URL": ""})
    assert result.returncode != 0
    assert "SSP_STATE_DIR" in result.stderr and "shorter folder" in result.stderr
    assert not state.exists()  # refused before Kafka or PostgreSQL wrote anything


@pytest.mark.integration
def test_produce_replays_a_file_into_kafka(stack, fixture_tweets_path, unique_name):
    from ssp.kafka.admin import topic_end_offsets

    topic = unique_name("replay")
    result = _ssp("produce", "--source", "replay", "--path", str(fixture_tweets_path), "--topic", topic,
                  "--no-ai-topic", "--rate", "500")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"produced 200 tweets to {topic}")
    assert sum(topic_end_offsets(os.environ["SSP_KAFKA_BOOTSTRAP"], topic).values()) == 200


def test_old_java_is_refused_with_the_fix(tmp_path, monkeypatch):
    from ssp.infra.process import InfraError, require_java17

    fake_java = tmp_path / "bin" / "java"
    fake_java.parent.mkdir()
    fake_java.write_text('#!/bin/sh\necho \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    fake_java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(InfraError, match="Java 11 found .* need Java 17 or newer"):
        require_java17()
