"""Where exported models live: the one rule for the folder of a model name and of one of its versions.

The trainer exports ``<models path>/<model name>/<N>/`` (``TrainConfig.models_path``: ``model_dir``, else
``<state dir>/models``); ``ssp serve`` watches that folder, and the stages that read a version's model
card (``ssp classify``, ``ssp evaluate``) look in the same place, unless a base path is given
(``--model-base-path``, ``ServeConfig.model_base_path``).

>>> model_folder("/srv/models", "naive_text_clf")
PosixPath('/srv/models/naive_text_clf')
>>> version_folder(model_folder("/srv/models", "naive_text_clf"), 3)
PosixPath('/srv/models/naive_text_clf/3')
>>> served_model_folder("naive_text_clf", "/srv/models", "", "/elsewhere/clf")
PosixPath('/elsewhere/clf')
>>> served_model_folder("naive_text_clf", "/srv/models", None, "")
PosixPath('/srv/models/naive_text_clf')
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["model_folder", "served_model_folder", "version_folder"]


def model_folder(models_path: Path | str, model_name: str) -> Path:
    """``<models_path>/<model_name>``: the folder of ``model_name``'s versions."""
    return Path(models_path) / model_name


def served_model_folder(model_name: str, models_path: Path | str, *base_paths: Path | str | None) -> Path:
    """The first of ``base_paths`` that is set (e.g. ``--model-base-path``, then ``ServeConfig.model_base_path``),
    else :func:`model_folder` of ``models_path`` (``TrainConfig.models_path``), where the trainer exports."""
    for base_path in base_paths:
        if base_path:
            return Path(base_path)
    return model_folder(models_path, model_name)


def version_folder(base_path: Path | str, version: int) -> Path:
    """``<base_path>/<version>``: one exported version (SavedModel and model card)."""
    return Path(base_path) / str(version)
