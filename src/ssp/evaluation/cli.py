"""``ssp evaluate``: weak labels or a served model against a labelled file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ssp.config import LabelConfig, ProducerConfig, ServeConfig, TrainConfig, default_state_dir
from ssp.errors import SspError
from ssp.evaluation.report import Evaluation, write_charts

SCORE_WIDTH = 6


def default_out_dir(gold: Path, scorer: str) -> Path:
    """``<state dir>/evaluations/<file stem>-<labels|model>/``."""
    return default_state_dir() / "evaluations" / f"{gold.stem}-{scorer}"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_evaluation(evaluation: Evaluation, top: int) -> None:
    """The figures (overall and per kind) and the worst errors, as rich tables."""
    from rich.table import Table

    from ssp.progress import console

    table = Table(title=f"{evaluation.scorer} on {evaluation.gold_file}", title_justify="left")
    table.add_column("kind", no_wrap=True)
    for column in ("posts", "AI", "called AI", "precision", "recall", "F1", "FPR", "share called AI"):
        table.add_column(column, justify="right")
    o = evaluation.overall
    table.add_row("[bold]all[/bold]", str(o.n), str(o.positives), str(o.called_ai), _f(o.precision), _f(o.recall),
                  _f(o.f1), _f(o.fpr), _f(o.called_ai / o.n if o.n else None))
    for kind in evaluation.per_kind:
        f, has_ai = kind.figures, kind.figures.positives > 0
        table.add_row(kind.kind, str(f.n), str(f.positives), str(f.called_ai),
                      _f(f.precision) if has_ai else "-", _f(f.recall) if has_ai else "-",
                      _f(f.f1) if has_ai else "-", _f(f.fpr), _f(kind.share_called_ai))
    console.print(table)
    console.print(f"average precision {_f(evaluation.average_precision)}, expected calibration error "
                  f"{_f(evaluation.ece)}, threshold {_f(evaluation.threshold) if evaluation.threshold is not None else 'its own'}, "
                  f"{evaluation.skipped} ambiguous posts left out")
    for title, errors in (("false positives (not AI, called AI), highest scores", evaluation.false_positives),
                          ("false negatives (AI, missed), lowest scores", evaluation.false_negatives)):
        if not errors:
            continue
        errors_table = Table(title=f"top {min(top, len(errors))} {title}", title_justify="left")
        errors_table.add_column("id")
        errors_table.add_column("kind")
        errors_table.add_column("score", justify="right", width=SCORE_WIDTH)
        errors_table.add_column("text", overflow="fold", ratio=3)
        with_voters = errors[0].voters is not None
        if with_voters:
            errors_table.add_column("voters", overflow="fold", ratio=2)
        for error in errors:
            cells = [error.id, error.kind or "", f"{error.score:.3f}", error.text.replace("\n", " ")]
            if with_voters:
                cells.append(", ".join(error.voters) or "(no vote)")
            errors_table.add_row(*cells)
        console.print(errors_table)


def _score(gold, labels: bool, model_url: str | None, model_name: str | None, threshold: float | None,
           background: int):
    from ssp.evaluation.scoring import default_base_path, model_scores, weak_label_scores
    from ssp.progress import console, progress_bar
    from ssp.serving.client import PredictClient

    if labels:
        with console.status(f"weak labels: labelling functions on {len(gold.frame)} posts + {background} "
                            "synthetic background tweets, then the label model"):
            return weak_label_scores(gold, background, ProducerConfig().seed, LabelConfig())
    serve = ServeConfig()
    with PredictClient.from_config(model_url, serve, model_name) as client:
        base_path = default_base_path(client.model_name, serve, TrainConfig())
        with progress_bar(f"scoring with {client.model_url}", len(gold.frame)) as advance:
            return model_scores(gold, client, threshold, base_path, advance=advance)


@click.command("evaluate")
@click.option("--gold", "gold_path", required=True, type=click.Path(dir_okay=False),
              help="Labelled file: .tsv, .csv or .jsonl with id, text (or payload: a raw X API payload), "
                   "label (1 AI, 0 not, -1 ambiguous: left out) and optional kind, lang.")
@click.option("--payloads", type=click.Path(dir_okay=False), default=None,
              help="JSONL of raw payloads joined by id to a gold file without text (e.g. sample_200_gold.tsv).")
@click.option("--labels", is_flag=True, help="Evaluate the weak labels (labelling functions + label model).")
@click.option("--model-url", default=None, metavar="URL",
              help="Evaluate the model served at this TF Serving REST URL, e.g. http://127.0.0.1:8501.")
@click.option("--model-name", default=None, help="Served model name (default: ServeConfig.model_name).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="P(AI) at or over which the model calls a post AI (default: the served version's model "
                   "card threshold when the card is on this machine, else 0.5).")
@click.option("--background", type=click.IntRange(min=0), default=5000, show_default=True,
              help="--labels: synthetic tweets the label model is fitted on together with the file (0: the file only).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for evaluation.json, pr_curve.png and reliability.png "
                   "(default: <state dir>/evaluations/<file stem>-<labels|model>/).")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Worst false positives and false negatives to show and save.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as one JSON object instead of tables.")
def evaluate(gold_path, payloads, labels, model_url, model_name, threshold, background, out_dir, top,
             as_json) -> None:
    """Score the weak labels (--labels) or a served model (--model-url) on a labelled file: precision, recall,
    F1 of the AI class, false-positive rate, the same per kind, the worst errors, a PR curve and a
    reliability chart.

    --labels fits the label model on --background synthetic tweets plus the file, so a small file gets a
    model as stable as the demo's; a post no labelling function voted on counts as called not AI.
    """
    from ssp.evaluation.gold import read_gold
    from ssp.progress import console

    if labels == bool(model_url):
        raise click.UsageError("give either --labels or --model-url URL")
    if labels and (threshold is not None or model_name):
        raise click.UsageError("--threshold and --model-name go with --model-url, not --labels")
    gold = read_gold(gold_path, payloads)
    scored = _score(gold, labels, model_url, model_name, threshold, background)
    try:
        evaluation = scored.evaluate(gold, top=top)
    except ValueError as err:  # e.g. a server answering NaN
        raise SspError(f"{scored.scorer}: {err}") from err
    out = Path(out_dir) if out_dir else default_out_dir(Path(gold_path), "labels" if labels else "model")
    out.mkdir(parents=True, exist_ok=True)
    document = evaluation.to_json()
    (out / "evaluation.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_charts(evaluation, out)
    if as_json:
        click.echo(json.dumps(document, ensure_ascii=False))
        console.print(f"{evaluation.line()}; saved in {out}")
        return
    print_evaluation(evaluation, top)
    click.echo(f"{evaluation.line()}; saved in {out}")
