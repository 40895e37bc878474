"""``ssp label`` (weak labels with Snorkel) and ``ssp label evaluate`` (weak labels vs gold)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from ssp.config import InfraConfig, LabelConfig, overridden
from ssp.errors import reported

T = TypeVar("T")


def _print_table(frame, title: str) -> None:
    from rich.table import Table

    from ssp.progress import console

    table = Table(title=title, title_justify="left")
    table.add_column("labelling function")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for name, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            if column == "Polarity":
                cells.append(" ".join(map(str, value)))
            elif isinstance(value, float):
                cells.append("-" if value != value else f"{value:.3f}")
            else:
                cells.append(str(value))
        table.add_row(str(name), *cells)
    console.print(table)


def _print_comparison(comparison: dict, gold_rows: int) -> None:
    from ssp.progress import console

    console.print(f"[bold]On {gold_rows} gold-labelled tweets[/bold]")
    for name, m in comparison.items():
        console.print(
            f"  {name:14s} accuracy {m['accuracy']:.3f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
            f"F1 {m['f1']:.3f}  abstained {m['abstained']} (accuracy where voted {m['accuracy_voted']:.3f})  confusion [[tn, fp], [fn, tp]] {m['confusion']}"
        )


def _reported(doing: str, run: Callable[[], T]) -> T:
    """``run()`` with its errors as messages: a keyword file that is missing or wrong, the database."""
    from ssp.labeling.functions import LabelingFunctionError  # with snorkel: only when a command runs

    with reported(doing, LabelingFunctionError, OSError):
        return run()


def _config(version: int | None) -> LabelConfig:
    return overridden(LabelConfig(), version=version)


@click.group("label", invoke_without_command=True)
@click.option("--version", type=click.IntRange(min=0), default=None,
              help="Dataset version to label (default: DatasetConfig.version).")
@click.option("--engine", type=click.Choice(["auto", "pandas", "spark"]), default=None,
              help="Where the labelling functions run; auto picks Spark for large tables (LabelConfig.spark_min_rows).")
@click.pass_context
def label(ctx: click.Context, version: int | None, engine: str | None) -> None:
    """Weak labels with Snorkel: apply the labelling functions to the dataset splits, fit the label model on
    snorkel_train, write slabel/slabel_prob to the split tables and to parquet files, and print the
    labelling-function summary (also saved as CSV and PNG).

    \b
    Subcommand:
      evaluate   weak labels against the tagger's gold labels on dev and test
    """
    ctx.ensure_object(dict)
    ctx.obj["version"] = version
    if ctx.invoked_subcommand is not None:
        return
    from ssp.labeling.pipeline import run_labeling
    from ssp.progress import summary

    config = _config(version)
    result = _reported(f"labelling dataset version {config.version}",
                       lambda: run_labeling(InfraConfig().database_url, config, engine=engine))
    title = f"Labelling functions on snorkel_train_dataset_{config.version} ({result.rows['snorkel_train']:,} tweets)"
    if result.gold_rows:
        title += f"; Correct/Incorrect/Emp. Acc. on {result.gold_rows} gold-labelled tweets"
    _print_table(result.lf_summary, title)
    if result.comparison:
        _print_comparison(result.comparison, result.gold_rows)
    else:
        from ssp.progress import console

        console.print("no gold labels yet: label model vs majority vote is compared once the tagger has labels")
    summary(result.line())


@label.command("evaluate")
@click.option("--version", type=click.IntRange(min=0), default=None,
              help="Dataset version (default: the one given to `ssp label`, else DatasetConfig.version).")
@click.pass_context
def evaluate(ctx: click.Context, version: int | None) -> None:
    """Weak labels (slabel) against gold labels (label, written by the tagger) on dev and test: accuracy,
    precision, recall and F1 for the AI class, the confusion matrix, and each labelling function's
    empirical accuracy; saved as evaluation.json and evaluation.png beside the label files."""
    from ssp.labeling.pipeline import evaluate_weak_labels
    from ssp.progress import console, summary

    if version is None:
        version = (ctx.obj or {}).get("version")
    config = _config(version)
    evaluation = _reported(f"evaluating the weak labels of dataset version {config.version}",
                           lambda: evaluate_weak_labels(InfraConfig().database_url, config))
    for split, m in evaluation.splits.items():
        (tn, fp), (fn, tp) = m["confusion"]
        console.print(
            f"[bold]{split}[/bold] ({m['n']} gold): accuracy {m['accuracy']:.3f}, precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}, F1 {m['f1']:.3f}, abstained {m['abstained']}\n"
            f"  confusion (rows gold, columns weak):   not AI   AI\n"
            f"                               not AI  {tn:6d} {fp:4d}\n"
            f"                               AI      {fn:6d} {tp:4d}"
        )
    if evaluation.lf_accuracy is not None:
        _print_table(evaluation.lf_accuracy, f"Labelling functions on {evaluation.gold_rows} gold dev+test tweets")
    if evaluation.chart is not None:
        console.print(f"chart: {evaluation.chart}")
    summary(evaluation.line())
