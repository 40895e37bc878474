"""``ssp serve``: serve the exported classifier over TensorFlow Serving's REST API.

With ``tensorflow_model_server`` on the PATH the command becomes that server (same flags);
otherwise it runs ssp's own server (:mod:`ssp.serving.server`), which answers the same REST
API. ``python -m ssp.serving.cli`` runs the command alone, with the default gin file.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from ssp.config import ServeConfig, TrainConfig
from ssp.errors import SspError
from ssp.serving.layout import served_model_folder

TF_SERVING_BINARY = "tensorflow_model_server"


@dataclass(frozen=True)
class ServeLimits:
    """What ssp's own server refuses (tensorflow_model_server has its own flags for these)."""

    max_request_bytes: int
    max_batch_size: int
    allowed_hosts: tuple[str, ...]


def tf_serving_command(binary: str, model_name: str, base_path: Path, rest_api_port: int, grpc_port: int,
                       poll_wait_seconds: float, version_labels: Mapping[str, int],
                       config_dir: Path | None = None) -> list[str]:
    """The ``tensorflow_model_server`` command line for the same settings.

    TF Serving takes version labels only in a model config file; ssp writes one (into
    ``config_dir``) whose version policy loads every version, because TF Serving can label
    only versions it has loaded, while the latest still serves requests without a version.
    """
    command = [binary, f"--port={grpc_port}", f"--rest_api_port={rest_api_port}",
               f"--file_system_poll_wait_seconds={max(1, round(poll_wait_seconds))}"]
    if not version_labels:
        return [*command, f"--model_name={model_name}", f"--model_base_path={base_path}"]
    labels = "".join(f"    version_labels {{ key: '{label}' value: {version} }}\n"
                     for label, version in version_labels.items())
    text = ("model_config_list {\n  config {\n"
            f"    name: '{model_name}'\n    base_path: '{base_path}'\n    model_platform: 'tensorflow'\n"
            "    model_version_policy { all {} }\n" + labels + "  }\n}\n")
    config_dir = config_dir or Path(tempfile.mkdtemp(prefix="ssp-tf-serving-"))
    config_file = config_dir / f"{model_name}.models.config"
    config_file.write_text(text)
    return [*command, f"--model_config_file={config_file}"]


@click.command("serve")
@click.option("--model-name", default=None, help="Model name in the URLs /v1/models/<name> (default: ServeConfig.model_name).")
@click.option("--model-base-path", type=click.Path(file_okay=False), default=None,
              help="Folder holding the <version>/ SavedModel folders (default: <state dir>/models/<model name>).")
@click.option("--host", default=None, help="Interface to listen on, ssp's server only (default: ServeConfig.host).")
@click.option("--rest-api-port", type=click.IntRange(0, 65535), default=None,
              help="REST port (default: ServeConfig.rest_api_port, 8501; 0 picks a free one).")
@click.option("--poll-wait-seconds", type=float, default=None,
              help="How often the base path is checked for new versions (default: ServeConfig.poll_wait_seconds).")
@click.option("--max-request-bytes", type=click.IntRange(min=1), default=None,
              help="Largest request body accepted, ssp's server only; larger ones get HTTP 413.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
              help="Most instances in one predict request, ssp's server only (default: ServeConfig.max_batch_size); "
                   "more get HTTP 400.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A Host name accepted besides the bound address's (ssp's server only; '*' for any); others get "
                   "HTTP 403. Repeatable (default: ServeConfig.allowed_hosts).")
@click.option("--version-label", "version_labels", multiple=True, metavar="LABEL=VERSION",
              help="Name a version, e.g. stable=1, for /v1/models/<name>/labels/stable; that version stays loaded. "
                   "Repeatable.")
@click.option("--server", "implementation", type=click.Choice(["auto", "ssp", "tensorflow"]), default="auto",
              show_default=True,
              help=f"auto: {TF_SERVING_BINARY} when it is on the PATH, else ssp's own server.")
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8500, show_default=True,
              help=f"gRPC port, {TF_SERVING_BINARY} only (ssp's server speaks REST only).")
def serve(model_name, model_base_path, host, rest_api_port, poll_wait_seconds, max_request_bytes, max_batch_size,
          allowed_hosts, version_labels, implementation, grpc_port) -> None:
    """Serve the model's newest version over TensorFlow Serving's REST API, switching to new versions as they appear.

    Endpoints: GET /v1/models/<name>[/versions/<v>|/labels/<l>][/metadata] and
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict. Stops on Ctrl-C or SIGTERM.
    """
    from ssp.serving.server import HostPolicy, parse_version_labels

    config = ServeConfig()
    model_name = model_name or config.model_name
    if not model_name or "/" in model_name or ":" in model_name:
        raise click.BadParameter(f"{model_name!r} must be non-empty without '/' or ':'", param_hint="--model-name")
    base_path = served_model_folder(model_name, TrainConfig().models_path, model_base_path,
                                    config.model_base_path).resolve()
    host = host or config.host
    port = config.rest_api_port if rest_api_port is None else rest_api_port
    poll = config.poll_wait_seconds if poll_wait_seconds is None else poll_wait_seconds
    if poll <= 0:
        raise click.BadParameter(f"must be above 0, got {poll}", param_hint="--poll-wait-seconds")
    max_bytes = max_request_bytes or config.max_request_bytes
    limits = ServeLimits(max_bytes, max_batch_size or config.max_batch_size,
                         tuple(allowed_hosts or config.allowed_hosts))
    if limits.max_batch_size < 1:
        raise click.BadParameter(f"must be at least 1, got {limits.max_batch_size}", param_hint="--max-batch-size")
    try:
        HostPolicy.for_bind(host, port, limits.allowed_hosts)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--allowed-host") from err
    try:
        labels = parse_version_labels(version_labels)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--version-label") from err

    binary = shutil.which(TF_SERVING_BINARY)
    if implementation == "tensorflow" and binary is None:
        raise SspError(f"--server tensorflow: {TF_SERVING_BINARY} is not on the PATH")
    if implementation != "ssp" and binary is not None:
        if port == 0:
            raise click.BadParameter(f"{TF_SERVING_BINARY} needs a fixed port (0 turns its REST API off)",
                                     param_hint="--rest-api-port")
        command = tf_serving_command(binary, model_name, base_path, port, grpc_port, poll, labels)
        click.echo(f"running {' '.join(command)}", err=True)
        sys.stdout.flush()
        os.execv(binary, command)  # signals and the exit status are the real server's from here on

    _run_ssp_server(model_name, base_path, host, port, poll, limits, labels)


def _run_ssp_server(model_name: str, base_path: Path, host: str, port: int, poll: float, limits: ServeLimits,
                    labels: Mapping[str, int]) -> None:
    from ssp.progress import summary

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the server's own lines
    # Loads and unloads are the server's story: show them even without `ssp -v`.
    logging.getLogger("ssp.serving").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ssp.serving.server import run_server

    def ready(url: str) -> None:
        click.echo(f"ssp model server ready at {url} (model base path {base_path})", err=True)

    try:
        result = run_server(model_name, base_path, host, port, poll_wait_seconds=poll,
                            max_request_bytes=limits.max_request_bytes, max_batch_size=limits.max_batch_size,
                            allowed_hosts=limits.allowed_hosts, version_labels=labels, on_ready=ready)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise SspError(f"port {host}:{port} is already in use; stop that program or pass "
                                       f"--rest-api-port {port + 10}") from err
        raise SspError(f"cannot serve {base_path} on {host}:{port}: {err}") from err
    summary(result.line())


if __name__ == "__main__":  # pragma: no cover
    from ssp.config import load_config

    load_config()
    serve()
