"""Pure clustering models: numpy in, numpy out, no Spark, Kafka, database or web imports.

The stream jobs (``ssp.streaming``) and views (``ssp.web``) wrap these models; the models never
reach back. A test (``tests/test_streaming_kmeans.py``) walks this package's imports to keep it so.

* :mod:`ssp.clustering.streaming_kmeans` -- Spark MLlib's streaming k-means, exactly, River-style.
* :mod:`ssp.clustering.dpmeans` -- DP-means (Kulis & Jordan 2012), batch and online: the number of
  clusters follows the data.
* :mod:`ssp.clustering.dpgmm` -- an online variational Dirichlet-process Gaussian mixture whose
  posterior after a batch is the prior of the next, with births, merges and retirements.
* :mod:`ssp.clustering.seeding` -- initial centres from data (k-means++).

Every model has the same two halves for a distributed stream (``local_state``, ``local_step`` on the
executors, ``merge_stats``, ``global_step`` on the driver), ``cluster_ids`` / ``centres`` /
``weights``, and ``to_state`` / ``from_state``; :func:`model_from_state` reads any of them back.

>>> model_from_state(StreamingKMeans(k=2, dim=1, seed=0).to_state()).k
2
>>> model_from_state({"model": "nope"})
Traceback (most recent call last):
...
ValueError: not a clustering model state: model 'nope' (known: streaming_kmeans, dpmeans, dpgmm)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ssp.clustering.dpgmm import DPGMM, DPGMMUpdate
from ssp.clustering.dpmeans import DPMeans, DPUpdate, lambda_from_k
from ssp.clustering.seeding import kmeans_plus_plus
from ssp.clustering.streaming_kmeans import (
    StreamingKMeans,
    assign,
    cluster_sums,
    decay_from_half_life,
    resolve_forgetting,
)

__all__ = ["MODELS", "DPGMM", "DPGMMUpdate", "DPMeans", "DPUpdate", "StreamingKMeans", "assign", "cluster_sums", "decay_from_half_life",
           "kmeans_plus_plus", "lambda_from_k", "model_from_state", "resolve_forgetting"]

# the state's "model" name -> its class
MODELS: dict[str, type] = {"streaming_kmeans": StreamingKMeans, "dpmeans": DPMeans, "dpgmm": DPGMM}


def model_from_state(state: Mapping[str, Any]) -> Any:
    """The model a ``to_state()`` described, whichever model it is; a ValueError says what is wrong."""
    name = state.get("model") if isinstance(state, Mapping) else None
    if name not in MODELS:
        raise ValueError(f"not a clustering model state: model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name].from_state(state)
