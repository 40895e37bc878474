"""ssp, the Spark Streaming Playground: a streaming machine-learning platform."""

__version__ = "0.1.0"
