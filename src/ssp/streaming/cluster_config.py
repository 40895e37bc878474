"""Settings of the clustering stream (``ssp cluster stream | show | view | plot``): one gin section.

Bind them like every stage's, e.g. ``--gin-param 'ClusterConfig.half_life = 10.0'``. Forgetting is
``half_life`` when it is set, else ``decay_factor`` (1.0 forgets nothing, as MLlib's default).

>>> ClusterConfig().job_for("points_topic")
'kmeans:points_topic'
>>> ClusterConfig(job="drift-demo").job_for("points_topic")
'drift-demo'
"""

from __future__ import annotations

from dataclasses import dataclass

import gin

from ssp.storage.clusters import DEFAULT_POINTS_DEAD_LETTER_TABLE

ALGORITHMS = ("kmeans",)


@gin.configurable
@dataclass
class ClusterConfig:
    """The points stream's clustering job, its tables and its live view."""

    algorithm: str = "kmeans"
    topic: str = "points_topic"
    version: int = 0
    job: str = ""  # default: "<algorithm>:<topic>"; names the model in cluster_models
    k: int = 3
    dim: int | None = None  # None: the first valid point of the stream sets it
    decay_factor: float = 1.0
    half_life: float | None = None  # when set, wins over decay_factor: a = 0.5 ** (1 / half_life)
    time_unit: str = "batches"  # batches | points
    seed: int = 42  # draws the initial centres (standard normal, as MLlib's setRandomCenters)
    init_weight: float = 1.0
    dead_letter_table: str = DEFAULT_POINTS_DEAD_LETTER_TABLE
    max_record_bytes: int = 64 * 1024
    max_offsets_per_trigger: int = 10_000
    trigger_seconds: float = 1.0
    starting_offsets: str = "earliest"
    # the live view (ssp cluster view)
    view_host: str = "127.0.0.1"
    view_port: int = 5006
    view_poll_ms: int = 250
    view_points: int = 5000  # points kept on screen (the stream's rollover)
    view_trail: int = 200  # micro-batches of centre trail and weight history kept on screen
    # the PNG (ssp cluster plot)
    plot_points: int = 5000
    plot_trail: int = 200

    def job_for(self, topic: str, algorithm: str | None = None) -> str:
        """The job name: ``job`` when set, else ``<algorithm>:<topic>``."""
        return self.job or f"{algorithm or self.algorithm}:{topic}"
