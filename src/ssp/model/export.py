"""Versioned SavedModel export in the layout TensorFlow Serving watches.

A model lives in ``<model_dir>/<model_name>/<N>/`` with the next integer ``N``. Servers poll
that folder and load any new integer sub-folder they find, so a version must appear whole or
not at all: it is written into a hidden, non-integer folder (``.tmp-<uuid>``) inside the
same base folder and then renamed into place, which is atomic on one file system. Two
exporters that pick the same ``N`` cannot clobber each other: renaming onto an existing
(non-empty) version fails, and the loser takes the next number.

The serving contract every consumer relies on (the model server, the stream classifier, the
active-learning loop): signature ``serving_default`` with one input ``text`` (``tf.string``,
shape ``[None]``) and one output ``ai_prob`` (``float32``, shape ``[None]``, P(AI)); loadable
with ``tf.saved_model.load`` alone, no Keras custom objects. ``model_card.json`` sits in the
version folder beside ``saved_model.pb``, ``variables/`` and ``assets/``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ssp.errors import SspError

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "text"
OUTPUT_NAME = "ai_prob"
MODEL_CARD_FILE = "model_card.json"
TEMP_PREFIX = ".tmp-"
# Enough for any realistic number of exporters racing for the same base folder.
_MAX_PUBLISH_ATTEMPTS = 1000


class ExportError(SspError, RuntimeError):
    """A model could not be exported; the message names the folder and the reason."""


def existing_versions(base_path: Path) -> list[int]:
    """Integer-named entries of ``base_path``, sorted; other names (temp folders, notes) are ignored."""
    base_path = Path(base_path)
    if not base_path.is_dir():
        return []
    return sorted(int(entry.name) for entry in base_path.iterdir() if entry.name.isdigit())


def next_version(base_path: Path) -> int:
    """One more than the highest integer version in ``base_path``; 1 for an empty or missing folder."""
    versions = existing_versions(base_path)
    return versions[-1] + 1 if versions else 1


def write_saved_model(model: Any, path: Path) -> None:
    """Write ``model`` (a Keras model mapping a string batch to P(AI)) as a SavedModel at ``path``.

    The endpoint is traced from the Keras model into plain TensorFlow graph functions, so the
    result loads with ``tf.saved_model.load`` without the Python classes that built it.
    """
    import keras
    import tensorflow as tf

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(text, training=False)
        return {OUTPUT_NAME: tf.reshape(tf.cast(probabilities, tf.float32), [-1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME, fn=serve, input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)]
    )
    archive.write_out(str(path), verbose=False)
    # TF writes assets/ only when the graph has asset files; the serving layout always has it.
    (Path(path) / "assets").mkdir(exist_ok=True)


def _write_card(folder: Path, card: dict) -> None:
    with open(folder / MODEL_CARD_FILE, "w", encoding="utf-8") as out:
        json.dump(card, out, indent=2, sort_keys=True, default=str)
        out.write("\n")


def publish_version(staged: Path, base_path: Path, card: dict | None = None) -> tuple[int, Path]:
    """Rename the finished folder ``staged`` to ``base_path/<N>`` for the next free integer ``N``.

    ``card``, when given, is written to ``staged/model_card.json`` with ``model_version`` set to
    the ``N`` being tried, before each rename, so the card always names the folder it ends up in.
    """
    staged, base_path = Path(staged), Path(base_path)
    if staged.parent.resolve() != base_path.resolve():
        # A rename across folders (or file systems) would not be the atomic step this relies on.
        raise ExportError(f"staged folder {staged} must be inside {base_path}")
    for _ in range(_MAX_PUBLISH_ATTEMPTS):
        version = next_version(base_path)
        if card is not None:
            _write_card(staged, {**card, "model_version": version})
        target = base_path / str(version)
        try:
            os.rename(staged, target)
        except OSError as err:
            # Another exporter published this number first: take the next one.
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY) or (err.errno == errno.ENOTDIR and target.exists()):
                continue
            raise ExportError(f"could not rename {staged} to {target}: {err}") from err
        return version, target
    raise ExportError(f"gave up publishing into {base_path} after {_MAX_PUBLISH_ATTEMPTS} version numbers were taken")


def export_model(model: Any, base_path: Path, card: dict) -> tuple[int, Path]:
    """Export ``model`` with ``card`` as the next integer version under ``base_path``.

    Returns the version number and its folder. Nothing is left behind on failure: the hidden
    temp folder is removed, and no integer folder appears.
    """
    base_path = Path(base_path)
    try:
        base_path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create model folder {base_path}: {err}") from err
    staged = base_path / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        write_saved_model(model, staged)
        return publish_version(staged, base_path, card)
    finally:
        # After a successful rename the staged path no longer exists; otherwise clean it up.
        shutil.rmtree(staged, ignore_errors=True)


def read_model_card(version_path: Path) -> dict:
    """The model card of one exported version folder."""
    path = Path(version_path) / MODEL_CARD_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as err:
        raise ExportError(f"{path} does not exist: {version_path} is not an exported model version") from err
    except json.JSONDecodeError as err:
        raise ExportError(f"{path} is not valid JSON: {err}") from err
