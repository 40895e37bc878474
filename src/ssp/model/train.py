"""The AI-tweet text classifier: training data from the dataset tables, training, metrics.

The model takes raw tweet texts: a ``TextVectorization`` layer inside it holds the vocabulary,
so the exported SavedModel is all a server needs (no tokenizer file travels beside it). The
default architecture, ``ngram_pool``, averages two bags: the embeddings of the known words, and
the embeddings of the character n-grams (``ngram_min``..``ngram_max``) of every word, padded
with ``<`` and ``>`` and hashed into ``ngram_buckets`` (all in TensorFlow string ops inside the
model), so a word never seen in training ("pytorchs", "PyTorch2", a word in another script)
still counts through the n-grams it shares with known words. ``embedding_pool`` is the
word-only average; ``bilstm`` reads the words with a bidirectional LSTM instead.
In training, a share of the known words of each batch (``TrainConfig.unknown_word_share``, half
by default) are read as the unknown word, so that the unknown word, which is all a real post's
names and slang are to the vocabulary, has learnt weights too instead of the random ones it starts
with, and so that the model cannot lean on the few words a synthetic template repeats: with half
the words gone, what is left to learn from is what a real post shares with the training posts
(character n-grams, the field's vocabulary in the lexicon features, the words that survive).

Targets come from three label sources, the better one first: a row's gold ``label`` (the
tagger's), else Snorkel's ``slabel_prob`` where a labelling function voted (``slabel`` != -1),
else, when ``TrainConfig.no_vote_weight`` > 0, rows no function voted on (``slabel`` = -1,
``slabel_prob`` NULL) as weak negatives with target ``LabelConfig.ai_prior`` and that sample
weight (most posts of a real stream get no vote and are not AI), else the row is left out.
Soft targets keep the label model's uncertainty, and binary cross-entropy takes them as they are.

After training, the decision threshold is chosen on dev (:func:`choose_dev_threshold`) and
written into the model card, where ``ssp classify`` reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssp.config import LabelConfig, TrainConfig
from ssp.errors import SspError
from ssp.labeling.metrics import binary_metrics
from ssp.metrics import DEFAULT_THRESHOLD, THRESHOLD_RULES, choose_threshold, roc_auc
from ssp.serving.layout import model_folder
from ssp.storage.tables import dataset_table, split_table_name, validate_identifier, validate_version

logger = logging.getLogger(__name__)

ARCHITECTURES = ("ngram_pool", "embedding_pool", "bilstm")
# Fewer gold dev rows than this make a noisy early-stopping signal; Snorkel's dev labels are used then.
MIN_GOLD_DEV_ROWS = 20
# Share of the training rows held out for early stopping when dev has no labels at all.
HOLDOUT_SHARE = 0.1
THRESHOLD = DEFAULT_THRESHOLD
_OOV_ID = 1  # TextVectorization: 0 pads, 1 is the unknown word
_COLUMNS = ("id", "text", "slabel", "slabel_prob", "label")

EpochCallback = Callable[[int, dict], None]


class TrainingDataError(SspError, ValueError):
    """The dataset tables cannot train a model; the message names the table and what is missing."""


@dataclass
class TrainingData:
    """The three splits of one dataset version, with columns id, text, slabel, slabel_prob, label."""

    version: int
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    tables: dict[str, str]


@dataclass
class LabelledTexts:
    """Texts with their targets and where each target came from ('gold', 'snorkel' or 'no_vote')."""

    texts: np.ndarray
    targets: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def count(self, source: str) -> int:
        return int((self.sources == source).sum())


def _read_split(conn, name: str) -> pd.DataFrame:
    from sqlalchemy import select

    table = dataset_table(name)
    query = select(*(table.c[column] for column in _COLUMNS)).order_by(table.c.id)
    frame = pd.read_sql(query, conn)
    # Nullable integer columns arrive as float with NaN; make them nullable integers again.
    for column in ("slabel", "label"):
        frame[column] = frame[column].astype("Int64")
    frame["slabel_prob"] = frame["slabel_prob"].astype("float64")
    frame["text"] = frame["text"].astype(str)
    return frame


def load_training_data(database_url: str, version: int) -> TrainingData:
    """Read ``train_/dev_/test_dataset_<version>``; fail clearly if one is missing or nothing is labelled."""
    from ssp.storage.postgres import make_engine, table_exists

    version = validate_version(version)
    tables = {split: split_table_name(split, version) for split in ("train", "dev", "test")}
    engine = make_engine(database_url)
    try:
        missing = [name for name in tables.values() if not table_exists(engine, name)]
        if missing:
            raise TrainingDataError(
                f"table{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"{'do' if len(missing) > 1 else 'does'} not exist: run `ssp dataset prepare` and `ssp label` "
                f"for dataset version {version} first"
            )
        with engine.connect() as conn:
            frames = {split: _read_split(conn, name) for split, name in tables.items()}
    finally:
        engine.dispose()
    for split, frame in frames.items():
        _check_label_values(tables[split], frame)
    data = TrainingData(version, frames["train"], frames["dev"], frames["test"], tables)
    if len(training_targets(data.train)) == 0:
        raise TrainingDataError(
            f"table {tables['train']} has no labelled rows ({len(data.train)} rows, none with a gold `label` "
            f"or a Snorkel `slabel_prob`): run `ssp label` for dataset version {version} or tag some tweets"
        )
    return data


def _check_label_values(table: str, frame: pd.DataFrame) -> None:
    """Labels written by other stages must be what this stage assumes; say which rows are not."""
    checks = (
        ("label", ~frame["label"].isna() & ~frame["label"].isin([0, 1]), "0, 1 or NULL"),
        ("slabel", ~frame["slabel"].isna() & ~frame["slabel"].isin([-1, 0, 1]), "-1, 0, 1 or NULL"),
        ("slabel_prob", ~frame["slabel_prob"].isna() & ~frame["slabel_prob"].between(0, 1), "in [0, 1] or NULL"),
    )
    for column, bad, expected in checks:
        bad = bad.to_numpy(bool)
        if bad.any():
            ids = frame["id"].to_numpy()[bad][:5].tolist()
            raise TrainingDataError(
                f"table {table}: column {column} must be {expected}, but {int(bad.sum())} row(s) are not "
                f"(ids {', '.join(map(str, ids))})"
            )


def training_targets(frame: pd.DataFrame, no_vote_target: float | None = None, hard: bool = False) -> LabelledTexts:
    """Per row: gold ``label`` if set, else ``slabel_prob`` if Snorkel voted (its ``slabel``, 0 or 1,
    with ``hard``), else the row is left out; with ``no_vote_target``, rows no function voted on
    (``slabel`` -1, ``slabel_prob`` NULL) get that target and the source 'no_vote'.

    >>> frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": pd.array([1, None, None, 0], "Int64"),
    ...                       "slabel": pd.array([0, 1, -1, None], "Int64"), "slabel_prob": [0.2, 0.9, 0.4, None]})
    >>> labelled = training_targets(frame)
    >>> labelled.texts.tolist(), labelled.targets.tolist(), labelled.sources.tolist()
    (['a', 'b', 'd'], [1.0, 0.8999999761581421, 0.0], ['gold', 'snorkel', 'gold'])
    >>> frame.loc[2, "slabel_prob"] = None
    >>> labelled = training_targets(frame, no_vote_target=0.1)
    >>> labelled.texts.tolist(), labelled.sources.tolist()
    (['a', 'b', 'c', 'd'], ['gold', 'snorkel', 'no_vote', 'gold'])
    >>> training_targets(frame, no_vote_target=0.0, hard=True).targets.tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    gold = frame["label"].notna().to_numpy()
    slabel = frame["slabel"]
    has_prob = frame["slabel_prob"].notna().to_numpy()
    weak = ~gold & has_prob & (slabel.isna() | (slabel != -1)).to_numpy(bool)
    no_vote = ~gold & ~has_prob & (slabel == -1).to_numpy(bool, na_value=False)
    if no_vote_target is None:
        no_vote = np.zeros_like(no_vote)
    keep = gold | weak | no_vote
    weak_targets = frame["slabel_prob"].to_numpy(dtype="float64", na_value=np.nan)
    if hard:
        weak_targets = np.where(np.isnan(weak_targets), np.nan, (weak_targets > 0.5).astype("float64"))
    targets = np.where(gold, frame["label"].astype("float64").to_numpy(na_value=np.nan), weak_targets)
    if no_vote_target is not None:
        targets = np.where(no_vote, float(no_vote_target), targets)
    return LabelledTexts(
        texts=frame["text"].to_numpy(dtype=object)[keep],
        targets=targets[keep].astype("float32"),
        sources=np.where(gold, "gold", np.where(no_vote, "no_vote", "snorkel"))[keep],
    )


def run_targets(frame: pd.DataFrame, config: TrainConfig) -> LabelledTexts:
    """The training targets ``ssp train`` uses: ``config.snorkel_targets`` ('hard': Snorkel's decision,
    'soft': its probability) and, with ``config.no_vote_weight`` > 0, the rows no function voted on as
    negatives (target 0 with hard targets, ``LabelConfig.ai_prior`` with soft ones)."""
    hard = config.snorkel_targets == "hard"
    no_vote_target = None
    if config.no_vote_weight > 0:
        no_vote_target = 0.0 if hard else LabelConfig().ai_prior
    return training_targets(frame, no_vote_target, hard=hard)


def sample_weights(labelled: LabelledTexts, config: TrainConfig) -> np.ndarray | None:
    """The sample weights ``ssp train`` uses: ``config.gold_weight`` for the rows with a gold label,
    ``config.no_vote_weight`` for the rows no labelling function voted on, 1 for Snorkel's; None when
    every weight is 1.

    >>> rows = LabelledTexts(np.array(["a", "b", "c"]), np.array([1.0, 0.0, 1.0]),
    ...                      np.array(["snorkel", "no_vote", "gold"]))
    >>> sample_weights(rows, TrainConfig(version=0, no_vote_weight=0.5, gold_weight=4.0)).tolist()
    [1.0, 0.5, 4.0]
    >>> sample_weights(rows, TrainConfig(version=0, no_vote_weight=1.0, gold_weight=1.0)) is None
    True
    """
    weights = np.select([labelled.sources == "gold", labelled.sources == "no_vote"],
                        [config.gold_weight, config.no_vote_weight], 1.0).astype("float64")
    return None if (weights == 1.0).all() else weights


def gold_rows(frame: pd.DataFrame) -> LabelledTexts:
    """Only the rows with a gold label."""
    gold = frame["label"].notna().to_numpy()
    return LabelledTexts(
        texts=frame["text"].to_numpy(dtype=object)[gold],
        targets=frame["label"].to_numpy(dtype="float64", na_value=np.nan)[gold].astype("float32"),
        sources=np.full(int(gold.sum()), "gold"),
    )


def snorkel_rows(frame: pd.DataFrame, hard: bool = False) -> LabelledTexts:
    """Rows where Snorkel gave a label (``slabel`` 0 or 1): targets are ``slabel_prob``, or ``slabel`` if ``hard``."""
    voted = frame["slabel"].isin([0, 1]).to_numpy(bool) & frame["slabel_prob"].notna().to_numpy()
    column = "slabel" if hard else "slabel_prob"
    return LabelledTexts(
        texts=frame["text"].to_numpy(dtype=object)[voted],
        targets=frame[column].to_numpy(dtype="float64", na_value=np.nan)[voted].astype("float32"),
        sources=np.full(int(voted.sum()), "snorkel"),
    )


def _check_config(config: TrainConfig) -> None:
    if config.architecture not in ARCHITECTURES:
        raise ValueError(
            f"TrainConfig.architecture {config.architecture!r} is unknown: expected one of {', '.join(ARCHITECTURES)}"
        )
    for name in ("max_tokens", "sequence_length", "embedding_dim", "epochs", "batch_size", "ngram_buckets",
                 "ngram_min", "ngram_embedding_dim", "max_ngrams"):
        if getattr(config, name) < 1:
            raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(config, name)}")
    if config.max_tokens < 3:
        raise ValueError(f"TrainConfig.max_tokens must be at least 3 (padding, unknown, one word), got {config.max_tokens}")
    if config.learning_rate <= 0:
        raise ValueError(f"TrainConfig.learning_rate must be positive, got {config.learning_rate}")
    if config.patience < 0:
        raise ValueError(f"TrainConfig.patience must be 0 or more, got {config.patience}")
    if config.ngram_max < config.ngram_min:
        raise ValueError(f"TrainConfig.ngram_max ({config.ngram_max}) must be at least ngram_min ({config.ngram_min})")
    if not (config.no_vote_weight >= 0 and np.isfinite(config.no_vote_weight)):
        raise ValueError(f"TrainConfig.no_vote_weight must be 0 or more, got {config.no_vote_weight}")
    if not (config.gold_weight > 0 and np.isfinite(config.gold_weight)):
        raise ValueError(f"TrainConfig.gold_weight must be above 0, got {config.gold_weight}")
    if not 0 <= config.unknown_word_share < 1:
        raise ValueError(f"TrainConfig.unknown_word_share must be in [0, 1), got {config.unknown_word_share}")
    if config.snorkel_targets not in ("hard", "soft"):
        raise ValueError(f"TrainConfig.snorkel_targets must be 'hard' or 'soft', got {config.snorkel_targets!r}")
    if config.threshold_rule not in THRESHOLD_RULES:
        raise ValueError(f"TrainConfig.threshold_rule {config.threshold_rule!r} is unknown: expected one of "
                         f"{', '.join(THRESHOLD_RULES)}")
    if not 0.0 < config.target_precision <= 1.0:
        raise ValueError(f"TrainConfig.target_precision must be in (0, 1], got {config.target_precision}")


def _check_targets(what: str, texts: Sequence[str], targets: Sequence[float]) -> np.ndarray:
    targets = np.asarray(targets, dtype="float32").reshape(-1)
    if len(texts) != len(targets):
        raise ValueError(f"{what}: {len(texts)} texts but {len(targets)} targets")
    if not texts:
        raise ValueError(f"{what}: no labelled texts")
    bad = ~np.isfinite(targets) | (targets < 0) | (targets > 1)
    if bad.any():
        raise ValueError(f"{what}: targets must be probabilities in [0, 1]; row {int(np.argmax(bad))} is "
                         f"{targets[int(np.argmax(bad))]}")
    return targets


def _masked_mean_layer(name: str = "mean_pool"):
    """Mean of the token embeddings over the real tokens only.

    Keras's own GlobalAveragePooling1D divides by the number of unmasked tokens, which is zero
    for a text with no tokens at all ("" or only punctuation), and the model would answer NaN.
    """
    import keras
    from keras import ops

    class MaskedMean(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            if mask is None:
                return ops.mean(inputs, axis=1)
            weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
            return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

        def compute_mask(self, inputs, mask=None):
            return None

    return MaskedMean(name=name)


# What TextVectorization's default standardisation strips, so both branches see the same words.
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


def _char_ngram_layer(config: TrainConfig):
    """Raw texts to hashed character n-gram ids, ``[batch, max_ngrams]``, 0 = padding.

    Lowercased (Unicode-aware), punctuation stripped, split into words; each word padded as
    ``<word>`` so prefixes and suffixes are n-grams of their own, as in fastText. Hashing needs
    no vocabulary: an n-gram never seen in training lands in a bucket with some learnt weight or
    none, and every script works the same way.
    """
    import keras
    import tensorflow as tf

    buckets, sizes, length = config.ngram_buckets, range(config.ngram_min, config.ngram_max + 1), config.max_ngrams

    class CharNgramIds(keras.layers.Layer):
        def call(self, texts):
            texts = tf.strings.lower(tf.reshape(texts, [-1]), encoding="utf-8")
            words = tf.strings.split(tf.strings.regex_replace(texts, _PUNCTUATION, " "))
            chars = tf.strings.unicode_split(tf.strings.join(["<", words.flat_values, ">"]), "UTF-8",
                                             errors="replace")
            grams = tf.concat([tf.strings.ngrams(chars, n, separator="") for n in sizes], axis=1)
            # short words have no n-gram of the longer sizes; a whole "<a>" is still its own gram
            per_text = tf.RaggedTensor.from_row_splits(grams, words.row_splits).merge_dims(1, 2)
            ids = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, per_text, buckets) + 1
            return ids.to_tensor(default_value=0, shape=[None, length])

    return CharNgramIds(name="char_ngrams")


def _core_model(config: TrainConfig, vocabulary_size: int, lexicon_size: int = 0):
    """The trainable part, from token ids (and, for ngram_pool, n-gram ids; with a lexicon, its
    features) to P(AI)."""
    import keras

    inputs = [keras.Input(shape=(config.sequence_length,), dtype="int64", name="token_ids")]
    x = keras.layers.Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding")(inputs[0])
    if config.architecture == "bilstm":
        units = max(16, config.embedding_dim // 2)
        x = keras.layers.Bidirectional(keras.layers.LSTM(units), name="bilstm")(x)
    else:
        x = _masked_mean_layer()(x)
    if config.architecture == "ngram_pool":
        inputs.append(keras.Input(shape=(config.max_ngrams,), dtype="int64", name="ngram_ids"))
        grams = keras.layers.Embedding(config.ngram_buckets + 1, config.ngram_embedding_dim, mask_zero=True,
                                       name="ngram_embedding")(inputs[1])
        x = keras.layers.Concatenate(name="words_and_ngrams")([x, _masked_mean_layer("ngram_mean_pool")(grams)])
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    if lexicon_size:
        inputs.append(keras.Input(shape=(lexicon_size,), dtype="float32", name="lexicon_features"))
        x = keras.layers.Concatenate(name="with_lexicon")([x, inputs[-1]])
    outputs = keras.layers.Dense(1, activation="sigmoid", name="ai_prob")(x)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=f"{config.architecture}_core")


def _epoch_reporter(on_epoch: EpochCallback):
    import keras

    class EpochReporter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = dict(logs or {})
            logger.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
            on_epoch(epoch + 1, logs)

    return EpochReporter()


@dataclass
class TrainingHistory:
    """How a fit went: epochs run, the epoch whose weights were kept, and the per-epoch losses."""

    epochs_run: int
    best_epoch: int
    best_dev_loss: float | None
    vocabulary_size: int
    loss: list[float]
    val_loss: list[float]


def train_classifier(
    texts: Sequence[str],
    targets: Sequence[float],
    dev_texts: Sequence[str],
    dev_targets: Sequence[float],
    config: TrainConfig,
    sample_weight: Sequence[float] | None = None,
    on_epoch: EpochCallback | None = None,
):
    """Fit a string-in, P(AI)-out Keras model; ``targets`` may be soft (any value in [0, 1]).

    See :func:`fit_classifier`, which also says how the training went.
    """
    return fit_classifier(texts, targets, dev_texts, dev_targets, config, sample_weight, on_epoch)[0]


def fit_classifier(
    texts: Sequence[str],
    targets: Sequence[float],
    dev_texts: Sequence[str],
    dev_targets: Sequence[float],
    config: TrainConfig,
    sample_weight: Sequence[float] | None = None,
    on_epoch: EpochCallback | None = None,
):
    """Fit the classifier and return ``(model, TrainingHistory)``.

    The vocabulary is learnt from ``texts`` and the texts are turned into token ids once, so
    the epochs only run the small trainable part. Training stops when the dev loss has not
    improved for ``config.patience`` epochs and keeps the best epoch's weights. ``on_epoch``
    is called after each epoch with its 1-based number and Keras's logs (loss, val_loss).
    """
    import keras
    import tensorflow as tf

    _check_config(config)
    texts = [str(t) for t in texts]
    dev_texts = [str(t) for t in dev_texts]
    y = _check_targets("training data", texts, targets)
    dev_y = _check_targets("dev data", dev_texts, dev_targets)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype="float32").reshape(-1)
        if len(weights) != len(texts) or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"sample_weight must hold {len(texts)} finite non-negative numbers, one per text")

    keras.utils.set_random_seed(config.seed)
    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens, output_mode="int", output_sequence_length=config.sequence_length,
        name="vectorizer",
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(1024))
    vocabulary_size = vectorizer.vocabulary_size()
    # the feature layers run once over the texts, so the epochs only run the trainable part
    features = [vectorizer] + ([_char_ngram_layer(config)] if config.architecture == "ngram_pool" else [])
    lexicon_size = 0
    if config.lexicon_features:
        from ssp.model.lexicon import lexicon_layer, read_lexicon

        lists = read_lexicon(config.lexicon_dir or None)
        features.append(lexicon_layer(lists))
        lexicon_size = len(lists)

    def featurize(strings):
        outputs = tuple(layer(strings) for layer in features)
        return outputs if len(outputs) > 1 else outputs[0]

    inputs, dev_inputs = featurize(tf.constant(texts, tf.string)), featurize(tf.constant(dev_texts, tf.string))

    core = _core_model(config, vocabulary_size, lexicon_size)
    core.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
    columns = (inputs, y) if weights is None else (inputs, y, weights)

    def with_unknown_words(features, *rest):
        ids = features[0] if isinstance(features, tuple) else features
        unknown = (tf.random.uniform(tf.shape(ids), seed=config.seed) < config.unknown_word_share) & (ids > _OOV_ID)
        ids = tf.where(unknown, tf.constant(_OOV_ID, ids.dtype), ids)
        return ((ids, *features[1:]) if isinstance(features, tuple) else ids, *rest)

    batches = (
        tf.data.Dataset.from_tensor_slices(columns)
        .shuffle(len(texts), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .map(with_unknown_words)
        .prefetch(2)
    )
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    callbacks = [stopper] + ([_epoch_reporter(on_epoch)] if on_epoch else [])
    history = core.fit(batches, validation_data=(dev_inputs, dev_y), epochs=config.epochs, verbose=0, shuffle=False,
                       callbacks=callbacks)

    text_input = keras.Input(shape=(), dtype="string", name="text")
    model = keras.Model(text_input, core(featurize(text_input)),
                        name=f"{config.architecture}_text_classifier")
    losses = [float(v) for v in history.history.get("loss", [])]
    return model, TrainingHistory(
        epochs_run=len(losses),
        best_epoch=stopper.best_epoch + 1,
        best_dev_loss=float(stopper.best) if stopper.best is not None else None,
        vocabulary_size=int(vocabulary_size),
        loss=losses,
        val_loss=[float(v) for v in history.history.get("val_loss", [])],
    )


def predict_proba(model: Any, texts: Sequence[str], batch_size: int = 1024) -> np.ndarray:
    """P(AI) for each text from a Keras text model."""
    import tensorflow as tf

    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros(0, dtype="float32")
    return np.asarray(model.predict(tf.constant(texts, tf.string), batch_size=batch_size, verbose=0),
                      dtype="float32").reshape(-1)


def _is_keras_model(obj: Any) -> bool:
    # A server client may well have a predict() of its own, so look at the type, not the method.
    import keras

    return isinstance(obj, keras.Model)


def evaluate(model_or_fn: Any, texts: Sequence[str], gold: Sequence[int], threshold: float = THRESHOLD) -> dict:
    """Accuracy, precision, recall, F1 (AI class), ROC-AUC and confusion [[tn, fp], [fn, tp]] at P(AI) >= threshold.

    ``model_or_fn`` is a Keras text model or any function from a list of texts to P(AI) values
    (a loaded SavedModel's signature wrapped, a model server client).
    """
    texts = [str(t) for t in texts]
    gold = np.asarray(gold)
    if len(texts) != len(gold):
        raise ValueError(f"evaluate: {len(texts)} texts but {len(gold)} gold labels")
    if not texts:
        raise ValueError("evaluate: no texts to evaluate on")
    if not np.isin(gold, [0, 1]).all():
        raise ValueError(f"evaluate: gold labels must be 0 or 1, got {sorted(set(np.unique(gold).tolist()))}")
    if _is_keras_model(model_or_fn):
        probabilities = predict_proba(model_or_fn, texts)
    else:
        probabilities = np.asarray(model_or_fn(texts), dtype="float64").reshape(-1)
    if len(probabilities) != len(texts):
        raise ValueError(f"evaluate: the model returned {len(probabilities)} probabilities for {len(texts)} texts")
    metrics = binary_metrics(gold.astype(int), (probabilities >= threshold).astype(int))
    metrics.pop("abstained", None)
    metrics["roc_auc"] = roc_auc(gold, probabilities)
    metrics["threshold"] = float(threshold)
    return metrics


def format_metrics(metrics: dict) -> list[str]:
    """Metrics as a few aligned lines for the terminal."""
    (tn, fp), (fn, tp) = metrics["confusion"]
    auc = "n/a (one class)" if metrics.get("roc_auc") is None else f"{metrics['roc_auc']:.4f}"
    return [
        f"  accuracy  {metrics['accuracy']:.4f}   n {metrics['n']}",
        f"  precision {metrics['precision']:.4f}   recall {metrics['recall']:.4f}   F1 (AI) {metrics['f1']:.4f}",
        f"  ROC-AUC   {auc}" + (f"   threshold {metrics['threshold']:.4f}" if "threshold" in metrics else ""),
        f"  {'confusion':<18}{'pred 0':>8}{'pred 1':>8}",
        f"    {'true 0 (not AI)':<16}{tn:>8}{fp:>8}",
        f"    {'true 1 (AI)':<16}{fn:>8}{tp:>8}",
    ]


@dataclass
class TrainSummary:
    """What ``run_training`` did: data used, where the model went, and its test metrics."""

    data_version: int
    model_name: str
    model_version: int
    path: Path
    train_rows: int
    gold_train_rows: int
    snorkel_train_rows: int
    dev_rows: int
    dev_source: str
    test_rows: int
    metrics_source: str | None  # 'gold', 'snorkel' (no gold test labels) or None (nothing to test on)
    metrics: dict | None
    epochs_run: int
    best_epoch: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    no_vote_train_rows: int = 0
    threshold: float = THRESHOLD
    threshold_source: str = "default"  # 'gold_dev', 'snorkel_dev' or 'default'

    def line(self) -> str:
        if self.metrics_source == "gold":
            result = f"test F1 {self.metrics['f1']:.3f} on {self.test_rows} gold labels"
        elif self.metrics_source == "snorkel":
            result = f"no gold test labels: F1 {self.metrics['f1']:.3f} against {self.test_rows} Snorkel labels"
        else:
            result = "no gold test labels and no Snorkel test labels: no test metrics"
        return (
            f"trained {self.model_name} version {self.model_version} on {self.train_rows} tweets "
            f"({self.gold_train_rows} gold, {self.snorkel_train_rows} Snorkel"
            + (f", {self.no_vote_train_rows} without a vote" if self.no_vote_train_rows else "")
            + f") of dataset {self.data_version} in {self.seconds:.1f} s ({self.epochs_run} epochs, best "
            f"{self.best_epoch}); threshold {self.threshold:.3f} ({self.threshold_source}); {result}; "
            f"exported to {self.path}"
        )


def model_base_path(config: TrainConfig) -> Path:
    """``<model_dir>/<model_name>``, with model_dir defaulting to ``$SSP_STATE_DIR/models``."""
    validate_identifier(config.model_name, "model name")
    return model_folder(config.models_path, config.model_name)


def _dev_set(data: TrainingData, train: LabelledTexts, seed: int) -> tuple[LabelledTexts, LabelledTexts, str]:
    """Early-stopping data: dev's gold rows if there are enough, else dev's Snorkel rows, else a train holdout."""
    gold = gold_rows(data.dev)
    if len(gold) >= MIN_GOLD_DEV_ROWS:
        return train, gold, f"gold labels of {data.tables['dev']}"
    weak = snorkel_rows(data.dev)
    if len(weak):
        return train, weak, f"Snorkel labels of {data.tables['dev']} ({len(gold)} gold dev rows, fewer than " \
                            f"{MIN_GOLD_DEV_ROWS})"
    if len(train) < 2:
        raise TrainingDataError(
            f"{data.tables['dev']} has no labelled rows and {data.tables['train']} has only {len(train)} "
            "labelled row(s), too few to hold some out for early stopping"
        )
    order = np.random.default_rng(seed).permutation(len(train))
    n_holdout = max(1, int(round(HOLDOUT_SHARE * len(train))))
    held, kept = order[:n_holdout], order[n_holdout:]

    def pick(rows: np.ndarray) -> LabelledTexts:
        return LabelledTexts(train.texts[rows], train.targets[rows], train.sources[rows])

    return pick(kept), pick(held), f"{n_holdout} rows held out of {data.tables['train']} ({data.tables['dev']} " \
                                   "has no labels)"


@dataclass
class DevThreshold:
    """The decision threshold and where it came from: 'gold_dev', 'snorkel_dev' or 'default'."""

    threshold: float
    rule: str
    source: str
    dev: dict | None  # the dev figures at the threshold (precision, recall, f1, predicted_ai, n)
    note: str | None = None

    def card_fields(self) -> dict:
        return {"threshold": self.threshold, "threshold_rule": self.rule, "threshold_source": self.source,
                "threshold_dev_metrics": self.dev}


def _usable(labels: np.ndarray) -> bool:
    return len(labels) >= MIN_GOLD_DEV_ROWS and len(np.unique(labels)) == 2


def choose_dev_threshold(score: Callable[[Sequence[str]], np.ndarray], dev: pd.DataFrame,
                         config: TrainConfig) -> DevThreshold:
    """The threshold by ``config.threshold_rule`` on dev's gold rows; with fewer than
    ``MIN_GOLD_DEV_ROWS`` of them or only one class, 0.5, or with ``config.threshold_on_snorkel_dev``
    on dev's hard Snorkel labels first. Snorkel's dev rows come from the same stream the model was
    trained on and are nearly separable, so a threshold chosen on them (anywhere from 0.2 to 0.7,
    measured) says nothing about real posts: the fallback is off by default.

    >>> dev = pd.DataFrame({"text": ["ai"] * 15 + ["cat"] * 15, "label": pd.array([1] * 12 + [0] * 16 + [1] * 2, "Int64"),
    ...                     "slabel": pd.array([None] * 30, "Int64"), "slabel_prob": [None] * 30})
    >>> scorer = lambda texts: np.array([0.3 if t == "ai" else 0.1 for t in texts])
    >>> choice = choose_dev_threshold(scorer, dev, TrainConfig())
    >>> round(choice.threshold, 3), choice.source, round(choice.dev["f1"], 3)
    (0.2, 'gold_dev', 0.828)
    >>> choose_dev_threshold(scorer, dev.iloc[:10], TrainConfig()).source
    'default'
    """
    rule = config.threshold_rule
    candidates = [("gold_dev", gold_rows(dev))]
    if config.threshold_on_snorkel_dev:
        candidates.append(("snorkel_dev", snorkel_rows(dev, hard=True)))
    for source, rows in candidates:
        labels = rows.targets.astype(int)
        if not _usable(labels):
            continue
        point, met = choose_threshold(labels, score(list(rows.texts)), rule, config.target_precision)
        note = None
        if not met:
            note = (f"no dev threshold reaches precision {config.target_precision}; the most precise one is used"
                    if rule == "precision" else "no dev threshold finds any AI row; the F1 is 0")
        return DevThreshold(point.threshold, rule, source, point.as_dict(), note)
    note = (f"dev has too few gold rows of both classes (at least {MIN_GOLD_DEV_ROWS} needed) to choose a threshold: "
            f"{THRESHOLD} is used")
    return DevThreshold(THRESHOLD, rule, "default", None, note)


def run_training(database_url: str, config: TrainConfig, on_epoch: EpochCallback | None = None) -> TrainSummary:
    """Load dataset ``config.version``, train, evaluate on the test split and export the next model version."""
    import keras
    import tensorflow as tf

    from ssp.model.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME, export_model

    start = time.monotonic()
    _check_config(config)
    base_path = model_base_path(config)
    data = load_training_data(database_url, config.version)
    train = run_targets(data.train, config)
    train, dev, dev_source = _dev_set(data, train, config.seed)
    with_no_vote = config.no_vote_weight > 0
    weights = sample_weights(train, config)

    model, history = fit_classifier(train.texts, train.targets, dev.texts, dev.targets, config, sample_weight=weights,
                                    on_epoch=on_epoch)

    notes: list[str] = []
    chosen = choose_dev_threshold(lambda texts: predict_proba(model, texts), data.dev, config)
    if chosen.note:
        notes.append(chosen.note)
    test = gold_rows(data.test)
    metrics_source: str | None = "gold"
    if len(test) == 0:
        notes.append(f"no gold test labels in {data.tables['test']}")
        test = snorkel_rows(data.test, hard=True)
        metrics_source = "snorkel" if len(test) else None
        notes.append("metrics are against Snorkel labels, not gold" if len(test) else "no Snorkel test labels either")
    metrics = evaluate(model, test.texts, test.targets.astype(int), chosen.threshold) if len(test) else None
    if metrics is not None:
        metrics["label_source"] = metrics_source

    card = {
        "model_name": config.model_name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": config.architecture,
        "signature": {
            "name": SIGNATURE_NAME,
            "inputs": {INPUT_NAME: {"dtype": "string", "shape": [None]}},
            "outputs": {OUTPUT_NAME: {"dtype": "float32", "shape": [None], "meaning": "P(AI tweet)"}},
        },
        "data": {
            "version": data.version,
            "tables": data.tables,
            "label_sources": {"gold": train.count("gold"), "snorkel": train.count("snorkel"),
                              **({"no_vote": train.count("no_vote")} if with_no_vote else {})},
            "label_rule": f"gold `label` (weight {config.gold_weight}) where present, else Snorkel's "
                          + ("decision (slabel 0/1)" if config.snorkel_targets == "hard" else "`slabel_prob`")
                          + " where slabel != -1"
                          + (f", else not AI with weight {config.no_vote_weight} where no labelling function voted"
                             if with_no_vote else ""),
            "train_rows": len(train),
            "dev": {"rows": len(dev), "source": dev_source},
            "test": {"rows": len(test), "label_source": metrics_source},
        },
        "parameters": asdict(config),
        "training": {**asdict(history), "seconds": round(time.monotonic() - start, 2)},
        **chosen.card_fields(),
        "metrics": metrics,
        "notes": notes,
        "framework": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    model_version, path = export_model(model, base_path, card)
    return TrainSummary(
        data_version=data.version,
        model_name=config.model_name,
        model_version=model_version,
        path=path,
        train_rows=len(train),
        gold_train_rows=train.count("gold"),
        snorkel_train_rows=train.count("snorkel"),
        dev_rows=len(dev),
        dev_source=dev_source,
        test_rows=len(test),
        metrics_source=metrics_source,
        metrics=metrics,
        epochs_run=history.epochs_run,
        best_epoch=history.best_epoch,
        seconds=time.monotonic() - start,
        notes=notes,
        no_vote_train_rows=train.count("no_vote"),
        threshold=chosen.threshold,
        threshold_source=chosen.source,
    )
