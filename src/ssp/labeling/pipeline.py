"""Weak labelling of a dataset version: apply the labelling functions, fit Snorkel's label model,
write ``slabel``/``slabel_prob`` back, and evaluate the weak labels against gold ones.

The labelling functions run either in this process over pandas frames or on Spark, where each
task reads its own id range of a table straight from PostgreSQL and labels it, so the work
spreads over every executor core. Both engines run the same functions through snorkel's
``PandasLFApplier`` and give the same label matrix.

Writing back is all or nothing: every split table is updated in one transaction, so a crash
half-way leaves the previous weak labels in place.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ssp.charts import pyplot, save_figure
from ssp.config import LabelConfig, default_state_dir
from ssp.labeling.metrics import ABSTAIN, binary_metrics, lf_summary
from ssp.labeling.weak import LabelingError, apply_frame, fit_label_model, majority_vote, weak_labels
from ssp.storage.tables import split_tables, validate_identifier

log = logging.getLogger(__name__)

# the columns a labelling function may look at, and the gold label
LF_INPUT_COLUMNS = ("id", "text", "urls", "hashtags", "lang", "user_screen_name", "is_retweet")
ENGINES = ("auto", "pandas", "spark")
# splits the label model and the weak labels are reported on
GOLD_SPLITS = ("dev", "test")


@dataclass
class LabelSummary:
    version: int
    engine: str
    rows: dict[str, int]
    labelled: dict[str, int]
    lf_names: list[str]
    lf_summary: pd.DataFrame
    gold_rows: int
    comparison: dict[str, dict]
    output_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        total = sum(self.rows.values())
        covered = sum(self.labelled.values())
        text = (
            f"labelled version {self.version} with {len(self.lf_names)} functions ({self.engine}): "
            f"{covered:,} of {total:,} tweets got a weak label ({covered / max(total, 1):.0%})"
        )
        if "label_model" in self.comparison:
            lm = self.comparison["label_model"]["f1"]
            mv = self.comparison["majority_vote"]["f1"]
            text += f"; F1 on {self.gold_rows} gold rows: label model {lm:.3f}, majority vote {mv:.3f}"
        return text + f"; files in {self.output_dir}"


def output_dir_for(config: LabelConfig) -> Path:
    if config.output_dir:
        return Path(config.output_dir)
    return default_state_dir() / "labels" / f"v{config.version}"


def _missing_tables(conn, tables: dict[str, str]) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name = ANY(%s)",
            (list(tables.values()),),
        )
        present = {row[0] for row in cur.fetchall()}
    return [name for name in tables.values() if name not in present]


def _require_tables(conn, version: int) -> dict[str, str]:
    tables = split_tables(version)
    missing = _missing_tables(conn, tables)
    if missing:
        raise LabelingError(
            f"dataset version {version} is not prepared: table(s) {', '.join(missing)} do not exist; "
            f"run `ssp dataset prepare --version {version}` first"
        )
    return tables


def read_table(conn, table: str, where: str = "", params: tuple = ()) -> pd.DataFrame:
    """The columns the labelling functions need, plus the gold label, ordered by id."""
    validate_identifier(table, "table name")
    columns = ", ".join((*LF_INPUT_COLUMNS, "label"))
    with conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM {table} {where} ORDER BY id", params)
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=[*LF_INPUT_COLUMNS, "label"])
    frame["label"] = frame["label"].astype("Int8")
    return frame


def apply_pandas(lfs, frames: dict[str, pd.DataFrame], advance=lambda n: None, chunk: int = 2000) -> dict[str, np.ndarray]:
    """Label matrices per split, computed in this process in chunks (for the progress bar)."""
    matrices = {}
    for split, frame in frames.items():
        parts = []
        for start in range(0, len(frame), chunk):
            part = frame.iloc[start:start + chunk]
            parts.append(apply_frame(lfs, part))
            advance(len(part))
        matrices[split] = np.vstack(parts) if parts else np.empty((0, len(lfs)), dtype=np.int8)
    return matrices


def _id_ranges(conn, table: str, slices: int) -> list[tuple[int, int]]:
    """Half-open id ranges with about the same number of rows each, covering the whole table."""
    fractions = [i / slices for i in range(1, slices)]
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT min(id), max(id), percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY id) FROM {table}",
            (fractions,),
        )
        low, high, cuts = cur.fetchone()
    if low is None:
        return []
    bounds = sorted({low, *(cuts or []), high + 1})
    return list(zip(bounds[:-1], bounds[1:], strict=False))


@functools.lru_cache(maxsize=4)
def worker_lfs(keyword_dir: str | None):
    """The labelling functions, built once per Python worker (Spark reuses its workers), instead of
    unpickling two dozen compiled keyword matchers with every task."""
    from ssp.labeling.functions import make_lfs

    return make_lfs(keyword_dir)


def _spark_labeller(database_url: str, keyword_dir: str | None):
    """What each Spark task runs: read its id ranges from PostgreSQL, label them."""

    def label(batches):
        import psycopg2

        lfs = worker_lfs(keyword_dir)
        conn = psycopg2.connect(database_url)
        try:
            for tasks in batches:
                for split, table, low, high in tasks.itertuples(index=False):
                    frame = read_table(conn, table, "WHERE id >= %s AND id < %s", (int(low), int(high)))
                    matrix = apply_frame(lfs, frame)
                    yield pd.DataFrame({
                        "split": split,
                        "id": frame["id"].astype("int64"),
                        "votes": list(matrix.astype(np.int32)),
                    })
        finally:
            conn.close()

    return label


def apply_spark(
    spark, database_url: str, keyword_dir: str | None, conn, tables: dict[str, str],
    slices_per_table: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Label matrices per split, and the ids of their rows in order, computed by Spark tasks
    that each read an id range of a table and apply the functions built from ``keyword_dir``."""
    n_lfs = len(worker_lfs(keyword_dir))
    parallelism = spark.sparkContext.defaultParallelism
    slices = slices_per_table or max(2, parallelism * 2)
    tasks = [
        (split, table, low, high)
        for split, table in tables.items()
        for low, high in _id_ranges(conn, table, slices)
    ]
    matrices = {split: np.empty((0, n_lfs), dtype=np.int8) for split in tables}
    ids = {split: np.empty(0, dtype=np.int64) for split in tables}
    if not tasks:
        return matrices, ids
    task_frame = spark.createDataFrame(
        spark.sparkContext.parallelize(tasks, numSlices=len(tasks)),
        "split string, table string, low long, high long",
    )
    result = task_frame.mapInPandas(
        _spark_labeller(database_url, keyword_dir), "split string, id long, votes array<int>"
    ).toPandas()
    for split in tables:
        part = result[result["split"] == split].sort_values("id")
        if len(part):
            matrices[split] = np.vstack(part["votes"].to_numpy()).astype(np.int8)
            ids[split] = part["id"].to_numpy()
    return matrices, ids


def choose_engine(engine: str, total_rows: int, config: LabelConfig) -> str:
    if engine not in ENGINES:
        raise LabelingError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "spark" if total_rows >= config.spark_min_rows else "pandas"
    return engine


def write_weak_labels(conn, tables: dict[str, str], frames: dict[str, pd.DataFrame], results: dict[str, tuple]) -> None:
    """Update every split table's ``slabel``/``slabel_prob`` in one transaction (the caller's)."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS ssp_weak_labels (id bigint PRIMARY KEY, slabel smallint, "
            "slabel_prob real) ON COMMIT DROP"
        )
        for split, table in tables.items():
            labels, probs = results[split]
            cur.execute("TRUNCATE ssp_weak_labels")
            buffer = io.StringIO()
            frame = pd.DataFrame({"id": frames[split]["id"].to_numpy(), "slabel": labels, "slabel_prob": probs})
            frame.to_csv(buffer, index=False, header=False, na_rep="")
            buffer.seek(0)
            cur.copy_expert("COPY ssp_weak_labels (id, slabel, slabel_prob) FROM STDIN WITH (FORMAT csv)", buffer)
            cur.execute(
                f"UPDATE {table} AS t SET slabel = w.slabel, slabel_prob = w.slabel_prob "
                "FROM ssp_weak_labels AS w WHERE t.id = w.id"
            )
            if cur.rowcount != len(frame):
                raise LabelingError(
                    f"{table} changed while it was being labelled: {cur.rowcount} of {len(frame)} rows updated"
                )


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_outputs(out: Path, frames, results, summary: pd.DataFrame, report: dict, names) -> None:
    """Parquet per split (id, text, gold, weak labels), the LF summary as CSV and PNG, a JSON report."""
    out.mkdir(parents=True, exist_ok=True)
    for split, frame in frames.items():
        labels, probs = results[split]
        table = frame[["id", "text", "label"]].copy()
        table["slabel"] = labels
        table["slabel_prob"] = probs
        _write_atomically(out / f"{split}.parquet", lambda p, t=table: t.to_parquet(p, index=False))
    printable = summary.copy()
    printable["Polarity"] = printable["Polarity"].map(lambda p: " ".join(map(str, p)))
    _write_atomically(out / "lf_summary.csv", lambda p: printable.to_csv(p, index_label="lf"))
    _write_atomically(out / "lf_summary.png", lambda p: plot_lf_summary(summary, p))
    _write_atomically(out / "label_report.json", lambda p: p.write_text(json.dumps(report, indent=2)))


def _accuracy_bars(ax, accuracy: pd.Series, xlabel: str, title: str) -> None:
    """Each labelling function's empirical accuracy on gold rows, as horizontal bars from 0 to 1."""
    ax.barh(np.arange(len(accuracy)), accuracy.fillna(0), color="tab:green")
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)


def plot_lf_summary(summary: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    has_gold = "Emp. Acc." in summary.columns
    fig, axes = plt.subplots(1, 2 if has_gold else 1, figsize=(13 if has_gold else 8, 0.35 * len(summary) + 1.5),
                             squeeze=False, sharey=True)
    y = np.arange(len(summary))
    ax = axes[0][0]
    height = 0.27
    ax.barh(y - height, summary["Coverage"], height, label="Coverage")
    ax.barh(y, summary["Overlaps"], height, label="Overlaps")
    ax.barh(y + height, summary["Conflicts"], height, label="Conflicts")
    ax.set_yticks(y, [f"{name} ({' '.join(map(str, pol))})" for name, pol in zip(summary.index, summary["Polarity"], strict=True)])
    ax.invert_yaxis()
    ax.set_xlabel("fraction of snorkel_train tweets")
    ax.legend(loc="lower right")
    ax.set_title("Labelling functions on snorkel_train")
    if has_gold:
        ax = axes[0][1]
        _accuracy_bars(ax, summary["Emp. Acc."], "empirical accuracy on gold rows", "Against gold labels")
        for i, (correct, incorrect) in enumerate(zip(summary["Correct"], summary["Incorrect"], strict=True)):
            ax.text(0.01, i, f"{correct}/{correct + incorrect}", va="center", fontsize=8)
    save_figure(fig, path, format="png", dpi=100)


def run_labeling(
    database_url: str,
    config: LabelConfig,
    engine: str | None = None,
    spark=None,
    show_progress: bool = True,
) -> LabelSummary:
    """Label dataset version ``config.version`` and write the weak labels back."""
    import psycopg2

    from ssp.labeling.functions import lf_names, make_lfs
    from ssp.progress import progress_bar

    timings: dict[str, float] = {}
    lfs = make_lfs(config.keyword_dir or None)
    names = lf_names(lfs)
    conn = psycopg2.connect(database_url)
    try:
        tables = _require_tables(conn, config.version)
        start = time.monotonic()
        with conn.cursor() as cur:
            rows = {}
            for split, table in tables.items():
                cur.execute(f"SELECT count(*) FROM {table}")
                rows[split] = cur.fetchone()[0]
        conn.rollback()
        chosen = choose_engine(engine or config.engine, sum(rows.values()), config)
        if chosen == "spark":
            owned = spark is None
            if owned:
                from ssp.infra.spark import spark_session

                spark = spark_session("ssp-label")
            try:
                matrices, ids = apply_spark(spark, database_url, config.keyword_dir or None, conn, tables)
            finally:
                if owned:
                    spark.stop()
            frames = {split: read_table(conn, table) for split, table in tables.items()}
            for split, frame in frames.items():
                if not np.array_equal(frame["id"].to_numpy(), ids[split]):
                    raise LabelingError(f"{tables[split]} changed while it was being labelled")
        else:
            frames = {split: read_table(conn, table) for split, table in tables.items()}
            with progress_bar("applying labelling functions", sum(rows.values()), show_progress) as advance:
                matrices = apply_pandas(lfs, frames, advance)
        conn.rollback()
        for split, frame in frames.items():
            if len(frame) != matrices[split].shape[0]:
                raise LabelingError(f"{tables[split]} changed while it was being labelled")
        timings["apply"] = time.monotonic() - start

        start = time.monotonic()
        model = fit_label_model(matrices["snorkel_train"], config)
        results = {split: weak_labels(model, L) for split, L in matrices.items()}
        timings["fit"] = time.monotonic() - start

        gold_L, gold_Y = _gold_rows(frames, matrices)
        summary = lf_summary(matrices["snorkel_train"], names)
        if len(gold_Y):
            with_gold = lf_summary(gold_L, names, gold_Y)
            for column in ("Correct", "Incorrect", "Emp. Acc."):
                summary[column] = with_gold[column]
        comparison = {}
        if len(gold_Y):
            lm_labels, _ = weak_labels(model, gold_L)
            comparison = {
                "label_model": binary_metrics(gold_Y, lm_labels),
                "majority_vote": binary_metrics(gold_Y, majority_vote(gold_L)),
            }

        start = time.monotonic()
        write_weak_labels(conn, tables, frames, results)
        conn.commit()
        timings["write"] = time.monotonic() - start
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()

    labelled = {split: int((labels != ABSTAIN).sum()) for split, (labels, _) in results.items()}
    out = output_dir_for(config)
    report = {
        "version": config.version,
        "engine": chosen,
        "rows": rows,
        "labelled": labelled,
        "labelling_functions": names,
        "gold_rows": int(len(gold_Y)),
        "comparison_on_gold": comparison,
        "seconds": timings,
    }
    start = time.monotonic()
    write_outputs(out, frames, results, summary, report, names)
    model.save(str(out / "label_model.pkl"))
    timings["files"] = time.monotonic() - start
    return LabelSummary(
        version=config.version, engine=chosen, rows=rows, labelled=labelled, lf_names=names,
        lf_summary=summary, gold_rows=int(len(gold_Y)), comparison=comparison, output_dir=out, seconds=timings,
    )


def _gold_rows(frames: dict[str, pd.DataFrame], matrices: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The label-matrix rows and gold labels of every tweet with a gold label, over all splits."""
    Ls, Ys = [], []
    for split, frame in frames.items():
        gold = frame["label"].notna().to_numpy()
        if gold.any():
            Ls.append(matrices[split][gold])
            Ys.append(frame["label"].to_numpy()[gold].astype(np.int8))
    if not Ls:
        return np.empty((0, 0), dtype=np.int8), np.empty(0, dtype=np.int8)
    return np.vstack(Ls), np.concatenate(Ys)


# ---------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    version: int
    splits: dict[str, dict]  # per split: weak-label metrics vs gold, or absent when no gold rows
    lf_accuracy: pd.DataFrame | None
    gold_rows: int
    chart: Path | None = None

    def line(self) -> str:
        if not self.gold_rows:
            return (
                f"no gold labels yet in version {self.version}'s dev and test tables: label tweets in the tagger "
                "(ssp tagger), then run this again"
            )
        parts = [
            f"{split} ({m['n']} gold): accuracy {m['accuracy']:.3f}, precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}, F1 {m['f1']:.3f}"
            for split, m in self.splits.items()
        ]
        return f"weak labels of version {self.version} vs gold: " + "; ".join(parts)


def evaluate_weak_labels(database_url: str, config: LabelConfig, write_chart: bool = True) -> Evaluation:
    """``slabel`` against the tagger's ``label`` on dev and test, and each function's accuracy there."""
    import psycopg2

    from ssp.labeling.functions import lf_names, make_lfs

    conn = psycopg2.connect(database_url)
    try:
        tables = _require_tables(conn, config.version)
        gold = {}
        for split in GOLD_SPLITS:
            table = tables[split]
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {table} WHERE slabel IS NOT NULL")
                if cur.fetchone()[0] == 0:
                    raise LabelingError(
                        f"{table} has no weak labels yet: run `ssp label --version {config.version}` first"
                    )
            frame = read_table(conn, table, "WHERE label IS NOT NULL")
            with conn.cursor() as cur:
                cur.execute(f"SELECT id, slabel FROM {table} WHERE label IS NOT NULL ORDER BY id")
                frame["slabel"] = [row[1] for row in cur.fetchall()]
            gold[split] = frame
    finally:
        conn.close()
    gold_rows = sum(len(f) for f in gold.values())
    if not gold_rows:
        return Evaluation(config.version, {}, None, 0)
    splits = {
        split: binary_metrics(frame["label"].to_numpy().astype(int), frame["slabel"].fillna(ABSTAIN).to_numpy().astype(int))
        for split, frame in gold.items() if len(frame)
    }
    lfs = make_lfs(config.keyword_dir or None)
    names = lf_names(lfs)
    both = pd.concat([f for f in gold.values() if len(f)], ignore_index=True)
    L = apply_frame(lfs, both)
    accuracy = lf_summary(L, names, both["label"].to_numpy().astype(int))[["Polarity", "Coverage", "Correct", "Incorrect", "Emp. Acc."]]
    evaluation = Evaluation(config.version, splits, accuracy, gold_rows)
    if write_chart:
        out = output_dir_for(config)
        out.mkdir(parents=True, exist_ok=True)
        evaluation.chart = out / "evaluation.png"
        _write_atomically(evaluation.chart, lambda p: plot_evaluation(evaluation, p))
        report = {"version": config.version, "splits": splits, "gold_rows": gold_rows,
                  "lf_accuracy": json.loads(accuracy.drop(columns="Polarity").to_json(orient="index"))}
        _write_atomically(out / "evaluation.json", lambda p: p.write_text(json.dumps(report, indent=2)))
    return evaluation


def plot_evaluation(evaluation: Evaluation, path: Path) -> None:
    plt = pyplot()
    splits = list(evaluation.splits)
    fig, axes = plt.subplots(1, len(splits) + 1, figsize=(4.5 * len(splits) + 7, 4.5), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=False):
        metrics = evaluation.splits[split]
        matrix = np.array(metrics["confusion"])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > matrix.max() / 2 else "black", fontsize=14)
        ax.set_xticks([0, 1], ["not AI / abstain", "AI"])
        ax.set_yticks([0, 1], ["not AI", "AI"])
        ax.set_xlabel("weak label")
        ax.set_ylabel("gold label")
        ax.set_title(f"{split}: F1 {metrics['f1']:.3f}, acc. {metrics['accuracy']:.3f}")
    ax = axes[0][-1]
    acc = evaluation.lf_accuracy
    _accuracy_bars(ax, acc["Emp. Acc."], "empirical accuracy on gold dev+test rows", "Labelling functions")
    ax.set_yticks(np.arange(len(acc)), list(acc.index), fontsize=8)
    ax.invert_yaxis()
    save_figure(fig, path, format="png", dpi=100)
