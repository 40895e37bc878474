"""Benchmark: weak labelling of N synthetic tweets with the pandas and the Spark engine.

Loads synthetic tweets into a fresh raw table of the local stack until N distinct tweets remain
after deduplication (the generator repeats itself a lot, as real streams do), prepares the dataset
(test 1000, dev 500, snorkel_train 10000, train the rest), gives dev and test the generator's
truth as gold labels, then runs ``ssp label`` once per engine and prints the seconds spent
applying the labelling functions, fitting the label model and writing the labels back. The two
engines must write the same weak labels. The last line printed is one JSON object with the figures.

    .venv/bin/python bench/label.py --n 50000
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time

import psycopg2
import psycopg2.extras

from ssp.config import DatasetConfig, InfraConfig, LabelConfig, load_config
from ssp.dataset.prepare import prepare_dataset
from ssp.infra.spark import spark_session
from ssp.infra.stack import LocalStack
from ssp.labeling.pipeline import run_labeling, split_tables
from ssp.sources.synthetic import SyntheticTweets
from ssp.storage.postgres import insert_raw_tweets
from ssp.text import normalize_text
from ssp.tweets import parse_tweet


def weak_labels(url: str, version: int) -> dict[str, list]:
    conn = psycopg2.connect(url)
    out = {}
    with conn.cursor() as cur:
        for split, table in split_tables(version).items():
            cur.execute(f"SELECT id, slabel, slabel_prob FROM {table} ORDER BY id")
            out[split] = cur.fetchall()
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000, help="distinct tweets to label (default 50000)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    load_config()
    infra = InfraConfig()
    for line in LocalStack.from_config(infra).up():
        print(line)
    url = infra.database_url
    version = random.randint(10**6, 10**7)
    # generate until N distinct normalised texts: what prepare keeps after deduplication
    generator = SyntheticTweets(seed=args.seed).generate(50 * args.n)
    tweets, distinct = [], set()
    while len(distinct) < args.n:
        tweet = next(generator)
        text = parse_tweet(tweet.payload).text
        key = normalize_text(text)
        if key not in distinct:
            distinct.add(key)
        tweets.append(tweet)
    truth = {t.tweet_id: int(t.is_ai) for t in tweets}
    insert_raw_tweets(url, f"raw_tweet_dataset_{version}", (t.payload for t in tweets))
    print(f"{len(tweets):,} raw synthetic tweets, {len(distinct):,} distinct after deduplication")
    prepared = prepare_dataset(url, DatasetConfig(version=version), show_progress=False)
    print(prepared.line() if hasattr(prepared, "line") else prepared)
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        for split in ("dev", "test"):
            table = split_tables(version)[split]
            cur.execute(f"SELECT id FROM {table}")
            psycopg2.extras.execute_batch(
                cur, f"UPDATE {table} SET label = %s WHERE id = %s", [(truth[r[0]], r[0]) for r in cur.fetchall()]
            )
    conn.close()

    figures: dict = {"n_raw": len(tweets), "version": version}
    labels = {}
    spark = spark_session("ssp-bench-label", infra)
    spark.range(4).count()  # the session's start-up is not labelling time
    import torch  # nor is importing torch, which the first label model fit would otherwise pay for

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        # Spark runs twice: the first run also pays for starting its Python workers (each imports snorkel
        # and torch once); the second is the steady state a long-lived session sees
        for engine in ("pandas", "spark_cold", "spark"):
            start = time.perf_counter()
            result = run_labeling(url, LabelConfig(version=version, output_dir=out),
                                  engine=engine.removesuffix("_cold"), spark=spark, show_progress=False)
            total = time.perf_counter() - start
            print(result.line())
            figures["rows"] = sum(result.rows.values())
            figures[engine] = {
                "apply_s": round(result.seconds["apply"], 2),
                "fit_s": round(result.seconds["fit"], 2),
                "write_s": round(result.seconds["write"], 2),
                "total_s": round(total, 2),
            }
            figures[engine]["apply_tweets_per_s"] = round(figures["rows"] / result.seconds["apply"])
            labels[engine] = weak_labels(url, version)
            figures["label_model_f1_on_gold"] = round(result.comparison["label_model"]["f1"], 4)
            figures["majority_vote_f1_on_gold"] = round(result.comparison["majority_vote"]["f1"], 4)
    spark.stop()
    figures["engines_agree"] = labels["pandas"] == labels["spark"]
    figures["spark_apply_speedup"] = round(figures["pandas"]["apply_s"] / figures["spark"]["apply_s"], 2)
    if not figures["engines_agree"]:
        raise SystemExit("the pandas and Spark engines wrote different weak labels; the benchmark is void")
    for engine in ("pandas", "spark_cold", "spark"):
        f = figures[engine]
        print(f"{engine:10s}: apply {f['apply_s']:6.2f} s ({f['apply_tweets_per_s']:,} tweets/s), "
              f"fit {f['fit_s']:5.2f} s, write {f['write_s']:5.2f} s, total {f['total_s']:6.2f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
