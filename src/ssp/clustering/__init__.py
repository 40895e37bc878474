"""Pure clustering models: numpy in, numpy out, no Spark, Kafka, database or web imports.

The stream jobs (``ssp.streaming``) and views (``ssp.web``) wrap these models; the models never
reach back. A test (``tests/test_streaming_kmeans.py``) walks this package's imports to keep it so.

* :mod:`ssp.clustering.streaming_kmeans` -- Spark MLlib's streaming k-means, exactly, River-style.
* :mod:`ssp.clustering.seeding` -- initial centres from data (k-means++).
"""

from __future__ import annotations

from ssp.clustering.seeding import kmeans_plus_plus
from ssp.clustering.streaming_kmeans import StreamingKMeans, assign, cluster_sums, decay_from_half_life

__all__ = ["StreamingKMeans", "assign", "cluster_sums", "decay_from_half_life", "kmeans_plus_plus"]
