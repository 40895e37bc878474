"""Configuration: gin files for parameters, the environment for secrets and addresses.

Each stage reads one gin-configurable settings class. Values come, lowest precedence first,
from the class defaults, ``config/default_ssp_config.gin``, any ``--gin-file`` and
``--gin-param`` given on the command line, and finally the environment for the things that
differ between machines or are secret (``SSP_DATABASE_URL``, ``SSP_KAFKA_BOOTSTRAP``,
``SSP_SPARK_MASTER``, ``SSP_STATE_DIR``, ``SSP_CACHE_DIR``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import gin

from ssp.errors import SspError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GIN_FILE = REPO_ROOT / "config" / "default_ssp_config.gin"


class ConfigError(SspError, ValueError):
    """A configuration value or file is wrong; the message says which and why."""


def default_state_dir() -> Path:
    """Where services keep logs and data: ``$SSP_STATE_DIR`` or ``~/.local/state/ssp``."""
    return Path(os.environ.get("SSP_STATE_DIR") or Path.home() / ".local" / "state" / "ssp")


def data_path(name: str) -> Path:
    """``name`` in the data folder: ``$SSP_DATA_DIR/<name>`` when it exists there, so an installed
    copy of ssp (where the repo's ``data`` folder is not next to the package) can be pointed at
    one; otherwise the repo's ``data/<name>``. The one rule for every file and folder of data."""
    data_dir = os.environ.get("SSP_DATA_DIR")
    if data_dir:
        candidate = Path(data_dir) / name
        if candidate.exists():
            return candidate
    return REPO_ROOT / "data" / name


def default_cache_dir() -> Path:
    """Where fetched jars live, outside the repo: ``$SSP_CACHE_DIR`` or ``~/.cache/ssp``."""
    return Path(os.environ.get("SSP_CACHE_DIR") or Path.home() / ".cache" / "ssp")


# The local PostgreSQL's generated passwords, one file per role (mode 0600), beside its data folder.
POSTGRES_SUPERUSER_PASSWORD_FILE = "superuser.password"
POSTGRES_APP_PASSWORD_FILE = "app.password"


def postgres_password_path(state_dir: Path, filename: str) -> Path:
    """``state_dir/postgres/<filename>``: where the local server keeps one role's generated password."""
    return state_dir / "postgres" / filename


def read_password_file(path: Path) -> str | None:
    """The password in ``path`` (one line), or None when the file does not exist yet."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def postgres_url(user: str, password: str | None, host: str, port: int, database: str) -> str:
    """A ``postgresql://`` URL; user and password are percent-encoded so any character is safe."""
    credentials = quote(user, safe="")
    if password is not None:
        credentials += ":" + quote(password, safe="")
    return f"postgresql://{credentials}@{host}:{port}/{quote(database, safe='')}"


@gin.configurable
@dataclass
class InfraConfig:
    """The local stack: Kafka broker, PostgreSQL server and Spark session."""

    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_version: str = "4.1.0"
    kafka_heap: str = "512m"
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_db: str = "sparkstreamingdb"
    # the apps' role: no superuser rights, owns the database. The superuser is for ``ssp infra`` only.
    postgres_user: str = "ssp_app"
    postgres_superuser: str = "ssp"
    spark_master: str = "local[*]"
    spark_version: str = "4.0.0"
    spark_kafka_clients_version: str = "3.9.0"
    spark_commons_pool2_version: str = "2.12.0"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = 4

    @property
    def kafka_bootstrap(self) -> str:
        return os.environ.get("SSP_KAFKA_BOOTSTRAP") or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def external_database_url(self) -> str | None:
        """A user-supplied database; when set, ssp starts no PostgreSQL of its own."""
        return os.environ.get("SSP_DATABASE_URL") or None

    @property
    def local_database_url(self) -> str:
        """The local server as the apps' role, with its password from the default state folder."""
        return self.local_database_url_in(default_state_dir())

    def local_database_url_in(self, state_dir: Path) -> str:
        """The local server whose files are in ``state_dir``, as the apps' role. Without a password
        when the server was never started there (connecting then fails, asking for one)."""
        password = read_password_file(postgres_password_path(state_dir, POSTGRES_APP_PASSWORD_FILE))
        return postgres_url(self.postgres_user, password, self.postgres_host, self.postgres_port, self.postgres_db)

    @property
    def database_url(self) -> str:
        return self.external_database_url or self.local_database_url

    @property
    def resolved_spark_master(self) -> str:
        return os.environ.get("SSP_SPARK_MASTER") or self.spark_master


@gin.configurable
@dataclass
class TopicsConfig:
    """The Kafka topics: the original project's two (keyword-matched tweets and the whole mix) and the
    clustering use case's points."""

    ai_tweets_topic: str = "ai_tweets_topic"
    mix_tweets_topic: str = "mix_tweets_topic"
    points_topic: str = "points_topic"
    frames_topic: str = "video_frames_topic"  # ssp produce --source video, ssp video cluster
    partitions: int = 4


@gin.configurable
@dataclass
class ProducerConfig:
    source: str = "synthetic"  # synthetic | replay | twitter | bluesky | points
    seed: int = 42
    rate: float = 0.0  # records per second; 0 means as fast as the broker takes them
    max_records: int = 10_000
    linger_ms: int = 20
    batch_size: int = 256 * 1024
    compression_type: str | None = None
    retries: int = 10
    # --source points: a Gaussian mixture of points_k centres in points_dim dimensions, moving as
    # points_scenario says (a preset, static | drift | events, or a scenario as JSON; see ssp.sources.points)
    points_k: int = 3
    points_dim: int = 2
    points_scenario: str = "events"
    points_stream_rate: float = 100.0  # points a second of stream time when --rate is 0 (unlimited)


@gin.configurable
@dataclass
class StreamingConfig:
    """What every Kafka-sourced stream (ingest, classify, clustering, video) shares: the Kafka consumer's
    settings on the executors. Each stream's own config has its trigger interval and batch size.

    >>> StreamingConfig().kafka_fetch_max_wait_ms
    10
    >>> StreamingConfig(kafka_fetch_max_wait_ms=-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ssp.config.ConfigError: StreamingConfig.kafka_fetch_max_wait_ms = -1: must be 0 or more...
    """

    # How long the broker may hold a fetch that has less than fetch.min.bytes (1) to give. Kafka's default,
    # 500 ms, stalls a micro-batch's tasks at the head of the topic, where the consumer's prefetch finds
    # nothing new (bench/throughput.py --latency-triggers 1:500 measures the old setting beside this one).
    kafka_fetch_max_wait_ms: int = 10

    def __post_init__(self) -> None:
        if self.kafka_fetch_max_wait_ms < 0:
            raise ConfigError(f"StreamingConfig.kafka_fetch_max_wait_ms = {self.kafka_fetch_max_wait_ms}: "
                              "must be 0 or more")


@gin.configurable(denylist=["table_prefix", "version"])
@dataclass
class IngestConfig:
    """Kafka -> PostgreSQL (ssp ingest). One fact, one setting: the topic is TopicsConfig.mix_tweets_topic,
    the table ``<DatasetConfig.raw_table_prefix>_<DatasetConfig.version>`` (a caller may pass others)."""

    table_prefix: str | None = None
    version: int | None = None
    dead_letter_table: str = "dead_letter_tweets"
    max_record_bytes: int = 256 * 1024
    # a task writes each Arrow batch as it comes, so a big micro-batch costs no memory, and each micro-batch
    # boundary costs the pipeline's ramp (Spark's bookkeeping, the first batch's parse before PostgreSQL is busy)
    max_offsets_per_trigger: int = 200_000
    trigger_seconds: float = 1.0
    starting_offsets: str = "earliest"

    def __post_init__(self) -> None:
        dataset = DatasetConfig()
        self.table_prefix = dataset.raw_table_prefix if self.table_prefix is None else self.table_prefix
        self.version = dataset.version if self.version is None else self.version


@gin.configurable
@dataclass
class DatasetConfig:
    """Deduplication and the train/dev/test split (ssp dataset prepare), and the two facts every tweet stage
    shares: the dataset version (raw_tweet_dataset_<v> -> ... -> classified_tweets_<v>) and the raw table's
    prefix. The other stages' configs take their version from here (``--version`` overrides it per command)."""

    version: int = 0
    raw_table_prefix: str = "raw_tweet_dataset"
    seed: int = 42
    test_size: int = 1000
    dev_size: int = 500
    snorkel_train_size: int = 10_000
    min_train_size: int = 1
    # on a table too small for the configured sizes, train keeps at least this share of the rows
    min_train_fraction: float = 0.4
    english_only: bool = False


@gin.configurable(denylist=["version"])  # the version is DatasetConfig.version
@dataclass
class LabelConfig:
    """Weak labelling with Snorkel (ssp label, ssp label evaluate)."""

    version: int | None = None  # None: DatasetConfig.version
    engine: str = "auto"  # auto | pandas | spark
    spark_min_rows: int = 100_000  # auto picks Spark from this many rows on
    keyword_dir: str = ""  # default: $SSP_DATA_DIR/labeling if it exists, else the repo's data/labeling
    epochs: int = 500
    learning_rate: float = 0.01
    l2: float = 1.0  # pulls each function's fitted accuracy towards prec_init; 0 lets a small fit run away
    seed: int = 123
    output_dir: str = ""  # default: $SSP_STATE_DIR/labels/v<version>
    # P(AI) before any labelling function votes: AI posts are a minority of a real stream
    ai_prior: float = 0.1
    # what the label model assumes of each function before it sees the votes: P(right | it voted);
    # the functions are written to be precise, and l2 keeps the fitted values near this when the
    # votes say little (a function that rarely overlaps with another)
    prec_init: float = 0.9

    def __post_init__(self) -> None:
        if self.version is None:
            self.version = DatasetConfig().version


@gin.configurable(denylist=["version"])  # the version is DatasetConfig.version
@dataclass
class TrainConfig:
    """The text classifier (ssp train)."""

    version: int | None = None  # None: DatasetConfig.version
    model_name: str = "naive_text_clf"
    model_dir: str = ""  # default: $SSP_STATE_DIR/models
    architecture: str = "ngram_pool"  # ngram_pool | embedding_pool | bilstm
    max_tokens: int = 20_000
    sequence_length: int = 64
    embedding_dim: int = 64
    # ngram_pool: character n-grams of each word, hashed into this many buckets (unseen words still count)
    ngram_buckets: int = 1 << 16
    ngram_min: int = 3
    ngram_max: int = 5
    ngram_embedding_dim: int = 16  # pooled then read by one dense unit, so a small size learns as well
    max_ngrams: int = 512  # n-grams kept per text
    # one 0/1 feature per keyword list of the labelling functions (the field's vocabulary, traps,
    # everyday topics), computed inside the SavedModel; its weights are learnt like the rest
    lexicon_features: bool = True
    lexicon_dir: str = ""  # default: the labelling functions' folder ($SSP_DATA_DIR/labeling, else data/labeling)
    # Share of the known words of each training batch read as the unknown word instead. A vocabulary
    # learnt from the training texts holds every word in them, so without this the unknown word's
    # embedding is never trained, and a real post full of names and slang the model never saw gets a
    # score from that random vector ("so right Marcella" scored 0.7): trained this way it stands for
    # "some word". A synthetic stream repeats its templates' words, and a model that may lean on them
    # is unsure of real posts that share few of them: on written_dev (3 seeds) F1 0.76 at a tenth,
    # 0.79 at 0.3 or half, and half ranks best (AP 0.93 at a tenth, 0.95 at half)
    unknown_word_share: float = 0.5
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.003
    patience: int = 3
    seed: int = 7
    # rows no labelling function voted on train as weak negatives (target LabelConfig.ai_prior) with
    # this sample weight; 0 leaves them out
    no_vote_weight: float = 1.0
    # A gold label (the tagger's) counts as this many weak ones. The tagger's few hundred labels sit
    # among thousands of weak ones, and at weight 1 they do not move the model: on written_dev
    # (ssp al simulate's workflow, 7,500 weak rows) 200 gold labels left F1 at 0.735; at 10 it rose to
    # 0.80-0.86
    gold_weight: float = 10.0
    # Snorkel's rows train on its decision ("hard", 0 or 1) or on its probability ("soft"): one precise
    # vote gives P(AI) about 0.8, and soft targets teach the model to answer below 0.5 on AI posts it
    # has not quite seen (measured on written_dev: F1 0.63 soft, 0.71-0.80 hard)
    snorkel_targets: str = "hard"
    threshold_rule: str = "best_f1"  # best_f1 | precision (the lowest threshold reaching target_precision)
    target_precision: float = 0.9
    # without enough gold dev rows, choose the threshold on Snorkel's dev labels instead of using 0.5
    threshold_on_snorkel_dev: bool = False

    @property
    def models_path(self) -> Path:
        """Where models are exported, ``<models_path>/<model_name>/<N>/``: ``model_dir``, else ``<state dir>/models``."""
        return Path(self.model_dir) if self.model_dir else default_state_dir() / "models"

    def __post_init__(self) -> None:
        if self.version is None:
            self.version = DatasetConfig().version


@gin.configurable
@dataclass
class ServeConfig:
    """The model server (ssp serve) and its clients."""

    model_name: str = "naive_text_clf"
    model_base_path: str = ""  # default: <TrainConfig.model_dir>/<model_name>
    host: str = "127.0.0.1"
    rest_api_port: int = 8501
    poll_wait_seconds: float = 1.0
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch_size: int = 10_000  # instances in one request; more is a 400 (TF Serving's --max_batch_size)
    # Host names (no port) accepted besides the bound address's; "*" any. On a 0.0.0.0 bind it makes the list exclusive.
    allowed_hosts: tuple[str, ...] = ()
    client_timeout_seconds: float = 10.0
    client_retries: int = 3
    client_batch_size: int = 1000  # texts a request; the model's own cost a text falls up to about 1,000

    @property
    def url(self) -> str:
        """The server's base URL as its clients reach it: ``http://<host>:<rest_api_port>``."""
        return f"http://{self.host}:{self.rest_api_port}"


CLASSIFY_PARSERS = ("python", "sql")  # ClassifyConfig.parser


@gin.configurable(denylist=["version"])  # the version is DatasetConfig.version
@dataclass
class ClassifyConfig:
    """Live classification of the stream (ssp classify); the topic is TopicsConfig.mix_tweets_topic."""

    version: int | None = None  # None: DatasetConfig.version
    threshold: float | None = None  # None: the model card's threshold of the version in use, else 0.5
    model_url: str = ""  # default: http://<ServeConfig.host>:<ServeConfig.rest_api_port>
    max_offsets_per_trigger: int = 20_000
    # A micro-batch of a live stream takes longer than this, so they run back to back and a tweet waits about
    # half a micro-batch before one picks it up (at 1 s it waited half a second more); an idle stream asks Kafka
    # for new records this often: about 5% of a core at 0.2 s, 2% at 1 s
    trigger_seconds: float = 0.2
    starting_offsets: str = "earliest"
    # who reads the tweets' JSON: "python" (orjson and ssp.tweets.parse_tweet in the Python workers) or "sql"
    # (Spark SQL for the records it reads exactly as parse_tweet does, ssp.streaming.tweet_sql; Python for the
    # rest). "python" by measurement: on 2 cores Spark's JSON reading costs more CPU than orjson and the Python
    # rule together (bench/classify.py runs both; README, "Live classification")
    parser: str = "python"

    def __post_init__(self) -> None:
        if self.version is None:
            self.version = DatasetConfig().version
        if self.parser not in CLASSIFY_PARSERS:
            raise ConfigError(f"ClassifyConfig.parser = {self.parser!r}: expected one of {', '.join(CLASSIFY_PARSERS)}")


@gin.configurable
@dataclass
class WebConfig:
    """The Flask apps (ssp dashboard, ssp tagger)."""

    host: str = "127.0.0.1"
    dashboard_port: int = 5001
    tagger_port: int = 5002
    page_size: int = 50
    # /chart/per-minute.png renders one bar a minute with matplotlib and needs no sign-in: 4 hours
    # (about 0.4 s of CPU) is the most it draws, a day took over 1 s (the JSON keeps its day)
    chart_max_minutes: int = 240
    # a rendered chart is reused for this long, so repeated requests do not render again
    chart_cache_seconds: float = 5.0
    # a tagger sign-in lasts this long (the server ends the session then, and at sign-out)
    tagger_session_hours: float = 12.0


@gin.configurable
@dataclass
class BlueskyConfig:
    """The Bluesky source (``ssp produce --source bluesky``): Jetstream's websocket and where its cursor is kept."""

    jetstream_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"  # or $SSP_JETSTREAM_URL
    wanted_dids: tuple[str, ...] = ()  # empty: every account's posts
    cursor_file: str = ""  # default: <state dir>/bluesky/cursor-<host>.json
    rewind_seconds: float = 5.0  # a restart resumes this far before the saved cursor (ids dedupe it)
    checkpoint_seconds: float = 1.0  # the cursor is saved this often, after a Kafka flush
    zstd_dictionary: str = ""  # Jetstream's zstd dictionary file: compressed frames; empty: uncompressed
    max_retries: int = 20  # failed connection attempts in a row before the source gives up
    first_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0


@gin.configurable(denylist=["version"])  # the version is DatasetConfig.version
@dataclass
class RepostConfig:
    """Reposting the AI posts with links (``ssp repost``): candidates, limits and the platforms' addresses."""

    platform: str = "bluesky"  # x | bluesky
    version: int | None = None  # None: DatasetConfig.version (the ai_tweets_<v> table read)
    mode: str = "review"  # review: what the dashboard approved | auto: every candidate over min_prob
    min_prob: float | None = None  # None: the model card's threshold of the version that scored the post
    fallback_min_prob: float = 0.9  # when a model card has no threshold
    max_per_hour: int = 30
    link_window_hours: float = 24.0  # a link reposted is not reposted again within this window
    blocked_domains: tuple[str, ...] = ()
    table: str = "reposts"
    x_api_url: str = "https://api.twitter.com"  # or $SSP_TWITTER_API_URL
    bluesky_pds_url: str = "https://bsky.social"  # or $SSP_BLUESKY_PDS_URL
    request_timeout_seconds: float = 10.0
    max_attempts: int = 3  # calls per post (timeouts, 5xx) before it is recorded as failed
    max_wait_seconds: float = 900.0  # a rate-limit wait longer than this ends the run (rerun later)

    def __post_init__(self) -> None:
        if self.version is None:
            self.version = DatasetConfig().version


@gin.configurable
@dataclass
class ActiveLearningConfig:
    """The tagger's query strategies and the retrain loop (ssp al)."""

    strategy: str = "least_confidence"  # the tagger's: least_confidence | entropy | disagreement | stochastic_uncertainty | random
    retrain_every: int = 50
    simulate_rounds: int = 10
    simulate_batch: int = 20
    simulate_seeds: int = 3
    simulate_initial: int = 20  # random labels every strategy starts from
    simulate_epochs: int = 40  # per round, no early stopping: a model trained on 20 labels needs them
    # ssp al simulate --gold: the share of a labelled file kept as the fixed test set, and which settings run
    simulate_test_share: float = 0.2
    simulate_gold_setting: str = "both"  # from_scratch | workflow | both
    simulate_weak_background: int = 0  # synthetic tweets the label model also fits on, beside the pool
    # workflow setting with --gold: synthetic posts standing for the platform's stream, whose weak
    # labels train beside the pool's as ssp train trains on the dataset (0: the pool alone); 8,000
    # give about 7,500 distinct posts, the size of the train split of the demo's 20,000 tweets
    simulate_workflow_stream: int = 8000


CLUSTER_ALGORITHMS = ("kmeans", "dpmeans", "dpgmm")


@gin.configurable
@dataclass
class ClusterConfig:
    """The points stream's clustering job, its tables and its live view (``ssp cluster``).

    Forgetting is ``half_life`` when it is set, else ``decay_factor`` (1.0 forgets nothing, as MLlib's
    default).

    >>> ClusterConfig().job_for("points_topic")
    'kmeans:points_topic'
    >>> ClusterConfig(job="drift-demo").job_for("points_topic")
    'drift-demo'
    """

    algorithm: str = "kmeans"  # the topic is TopicsConfig.points_topic
    version: int = 0
    job: str = ""  # default: "<algorithm>:<topic>"; names the model in cluster_models
    k: int = 3
    dim: int | None = None  # None: the first valid point of the stream sets it
    decay_factor: float = 1.0
    half_life: float | None = None  # when set, wins over decay_factor: a = 0.5 ** (1 / half_life)
    time_unit: str = "batches"  # batches | points
    # initial centres: "kmeans++" draws them from the first micro-batch's points; "random" is MLlib's
    # setRandomCenters (standard normal draws, for standardised data)
    init: str = "kmeans++"
    seed: int = 42  # seeds the initial centres
    init_weight: float = 1.0
    # dpmeans: a point farther than sqrt(dp_lambda) from every centre opens a cluster; None derives
    # lambda from k on the first micro-batch (farthest-first); centres closer than dp_merge_within *
    # lambda (squared) merge; clusters below dp_retire_below of the total weight are retired
    dp_lambda: float | None = None
    dp_merge_within: float = 1.0
    dp_retire_below: float = 0.01
    # dpgmm: the Dirichlet process's concentration, the most components, diag or full covariances
    dp_alpha: float = 1.0
    dp_max_components: int = 50
    dp_covariance: str = "diag"
    dead_letter_table: str = "dead_letter_points"
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


@gin.configurable
@dataclass
class VideoConfig:
    """Colour clustering of video frames (``ssp produce --source video``, ``ssp video``): the generated test
    video, the frames topic's record limit, the palette model and the stream job.

    The palette: ``colour_lambda`` (a squared RGB distance: a pixel farther than its root from every colour
    opens one), or ``colours`` (about how many; lambda derived from the first frame) when it is set.
    """

    version: int = 0
    job: str = ""  # default: "palette:<topic>"; names the job in video_frames_<v>
    colour_lambda: float = 2500.0
    colours: int | None = None
    coreset_size: int = 1000
    coreset_eps: float = 0.1  # --coreset-size auto: the lightweight coreset's bound for this eps
    max_iter: int = 100
    seed: int = 42
    # the generated video (no --path): scene, size, length and frame rate
    scene: str = "landscape"  # landscape | palette
    width: int = 426
    height: int = 226
    frames: int = 300
    fps: float = 30.0
    max_frame_bytes: int = 8 * 1024 * 1024  # the frames topic's max.message.bytes when ssp creates it
    dead_letter_table: str = "dead_letter_frames"
    # at most 10 s of video a micro-batch: a micro-batch costs about 1.2 s of CPU whatever its size (README,
    # video benchmark), so a small cap cannot catch up with a backlog; a stream that keeps up makes
    # micro-batches of what arrived since the last one, whatever the cap
    max_offsets_per_trigger: int = 300
    trigger_seconds: float = 0.5
    starting_offsets: str = "earliest"
    output_dir: str = ""  # default: <state dir>/video
    silhouette_sample: int = 1000

    def job_for(self, topic: str) -> str:
        """The job name: ``job`` when set, else ``palette:<topic>``.

        >>> VideoConfig().job_for("video_frames_topic")
        'palette:video_frames_topic'
        """
        return self.job or f"palette:{topic}"

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir) if self.output_dir else default_state_dir() / "video"


@gin.configurable
@dataclass
class UsersConfig:
    """The user-activity clustering batch job (``ssp users``): generated users, features, k-means sweep, MLflow."""

    users: int = 10_000
    mean_events: float = 20.0  # events per user on average, before the persona's activity factor
    personas: int = 5
    days: int = 7
    seed: int = 42
    topic: str = "user_activity_topic"  # ssp users generate --to-kafka
    workdir: str = ""  # default: <state dir>/users/<run name>
    k_min: int = 2
    k_max: int = 10
    kmeans_max_iter: int = 30
    # scikit-learn's stopping rule: a fit stops when its centres' total squared shift in an iteration falls below
    # this share of the data's mean variance (Spark's own tol is an absolute distance per centre)
    kmeans_tol: float = 1e-4
    # fits per k, keeping the lowest WCSS: one k-means|| start can merge two personas (with 3 fits, 1,500
    # users of 5 personas at seed 1 still came out merged, ARI 0.73; with 5, 0.997)
    kmeans_restarts: int = 5
    pca_variance: float = 0.95  # the fewest components explaining this share of the variance
    pca_components: int = 0  # when set, exactly this many components
    elbow_tolerance: float = 0.1
    silhouette_sample: int = 200_000  # rows the silhouette is computed on (a seeded sample beyond)
    plot_points: int = 20_000
    experiment: str = "ssp-users"
    mlflow_dir: str = ""  # default: <state dir>/mlflow (SQLite store and artifacts), unless MLFLOW_TRACKING_URI

    @property
    def mlflow_path(self) -> Path:
        return Path(self.mlflow_dir) if self.mlflow_dir else default_state_dir() / "mlflow"


def overridden(config, **values):
    """``config`` with each value given (not None) in place of its own: the one way a command's flags
    override the gin settings.

    >>> overridden(DatasetConfig(version=1, seed=3), version=4, seed=None).version
    4
    """
    return dataclasses.replace(config, **{name: value for name, value in values.items() if value is not None})


def load_config(gin_files: Sequence[str | Path] = (), bindings: Sequence[str] = ()) -> None:
    """Parse the default gin file, then ``gin_files`` and ``bindings`` on top of it."""
    files = [DEFAULT_GIN_FILE] if DEFAULT_GIN_FILE.exists() else []
    for path in gin_files:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"gin file {path} does not exist")
        files.append(path)
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(f) for f in files], list(bindings))
    except (ValueError, KeyError, SyntaxError) as err:
        raise ConfigError(f"bad gin configuration ({', '.join(map(str, files))}; bindings {list(bindings)}): {err}") from err
