"""Labelled files: posts with a gold answer to "is this post about AI, ML or data science?".

A file is TSV (``.tsv``), CSV (``.csv``) or JSON lines (``.jsonl``/``.json``) with one post per
row and these columns (JSONL: keys):

* ``id`` (required): any string, unique in the file;
* ``text``, or ``payload`` (a raw X API v1.1 / v2 payload, a JSON object, parsed by
  :func:`ssp.tweets.parse_tweet` so text, links, hashtags and language are the pipeline's own);
  a file with neither can be joined to a file of raw payloads by id (``payloads=``);
* ``label`` (required): ``1`` (AI), ``0`` (not AI) or ``-1`` (genuinely ambiguous: kept, but left
  out of every figure);
* ``kind`` and ``lang`` (optional).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> path = folder / "gold.tsv"
>>> _ = path.write_text("id\\tlabel\\tkind\\ttext\\n"
...     "a\\t1\\tai_keyword\\tNew #LLM paper https://t.co/x\\n"
...     "b\\t0\\ttrap\\tAi Weiwei's show\\n", encoding="utf-8")
>>> gold = read_gold(path)
>>> gold.frame[["id", "label", "kind"]].values.tolist()
[['a', 1, 'ai_keyword'], ['b', 0, 'trap']]
>>> gold.frame.loc[0, "hashtags"], gold.frame.loc[0, "urls"]
(['LLM'], ['https://t.co/x'])
>>> _ = path.write_text("id\\tlabel\\ttext\\nc\\tyes\\thello\\n", encoding="utf-8")
>>> try:
...     read_gold(path)
... except GoldFileError as err:
...     print(str(err).split(": ", 1)[1])
line 2: label must be 1, 0 or -1 (ambiguous), got 'yes'
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
import pandas as pd

from ssp.errors import SspError
from ssp.tweets import Tweet, TweetParseError, parse_tweet

__all__ = ["AMBIGUOUS", "GoldFileError", "GoldSet", "read_gold"]

AMBIGUOUS = -1
_LABELS = {"1": 1, "0": 0, "-1": AMBIGUOUS}
_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_URL = re.compile(r"https?://[^\s<>\"']+")
COLUMNS = ("id", "text", "lang", "urls", "hashtags", "user_screen_name", "is_retweet", "label", "kind")


class GoldFileError(SspError, ValueError):
    """A labelled file that cannot be read; the message names the file, the line and the problem."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}" if line is None else f"{path}: line {line}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = path, line, problem


@dataclass
class GoldSet:
    """The posts of one labelled file: a frame with :data:`COLUMNS`, as the labelling functions
    read rows (``urls`` and ``hashtags`` are lists), in file order."""

    path: Path
    frame: pd.DataFrame

    @property
    def scored(self) -> pd.DataFrame:
        """The rows with a definite label (ambiguous ones left out)."""
        return self.frame[self.frame["label"] != AMBIGUOUS]

    def line(self) -> str:
        counts = self.frame["label"].value_counts()
        return (f"{self.path.name}: {len(self.frame)} posts, {int(counts.get(1, 0))} AI, "
                f"{int(counts.get(0, 0))} not AI, {int(counts.get(AMBIGUOUS, 0))} ambiguous")


def _rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) for each record of ``path``."""
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldFileError(path, None, "no such file") from None
    except UnicodeDecodeError as err:
        raise GoldFileError(path, raw_line(path, err.start), f"not UTF-8 text ({err.reason})") from None
    if suffix in (".jsonl", ".json", ".ndjson"):
        records = []
        for number, text in enumerate(raw.splitlines(), 1):
            if not text.strip():
                continue
            records.append((number, _json_object(path, number, text)))
        return records
    if suffix not in (".tsv", ".csv", ".tab", ".txt"):
        raise GoldFileError(path, None, f"unknown file type {suffix!r}: use .tsv, .csv or .jsonl")
    delimiter = "," if suffix == ".csv" else "\t"
    reader = csv.reader(raw.splitlines(), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else
                        csv.QUOTE_NONE)
    header = next(reader, None)
    if not header:
        raise GoldFileError(path, 1, "the file is empty: a header line with id, label and text is needed")
    header = [name.strip().lower() for name in header]
    records = []
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise GoldFileError(path, number, f"{len(row)} fields where the header has {len(header)} "
                                              f"({', '.join(header)})")
        records.append((number, dict(zip(header, row, strict=True))))
    return records


def raw_line(path: Path, offset: int) -> int:
    """The 1-based line of byte ``offset`` in ``path``."""
    return path.read_bytes()[:offset].count(b"\n") + 1


def _label(path: Path, number: int, value: object) -> int:
    text = str(value).strip() if value is not None else ""
    if isinstance(value, bool) or text not in _LABELS:
        raise GoldFileError(path, number, f"label must be 1, 0 or -1 (ambiguous), got {value!r}")
    return _LABELS[text]


def _json_object(path: Path, number: int, value: object, what: str | None = None) -> dict:
    """``value`` (JSON text, or already decoded) as a JSON object, or a GoldFileError naming ``what``
    (the field; None for a whole line)."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as err:
            raise GoldFileError(path, number, f"{what + ' is ' if what else ''}not JSON ({err})") from None
    if not isinstance(value, dict):
        problem = f"{what} must be a JSON object" if what else "a JSON object is needed"
        raise GoldFileError(path, number, f"{problem}, got {type(value).__name__}")
    return value


def post_fields(tweet: Tweet) -> dict:
    """The fields of a parsed post that the labelling functions read, besides its id."""
    return {"text": tweet.text, "lang": tweet.lang, "urls": list(tweet.urls), "hashtags": list(tweet.hashtags),
            "user_screen_name": tweet.user_screen_name, "is_retweet": tweet.is_retweet}


def _from_payload(path: Path, number: int, payload: dict) -> dict:
    try:
        tweet = parse_tweet(payload)
    except TweetParseError as err:
        raise GoldFileError(path, number, f"payload is not a post ssp can read ({err.reason}: {err})") from None
    return post_fields(tweet)


def _from_text(text: str, lang: str | None) -> dict:
    return {"text": text, "lang": lang, "urls": _URL.findall(text), "hashtags": _HASHTAG.findall(text),
            "user_screen_name": None, "is_retweet": text.startswith("RT @")}


def read_payloads(path: Path) -> dict[str, dict]:
    """Raw payloads of a JSONL file, by their id as a string."""
    found: dict[str, dict] = {}
    for number, record in _rows(path):
        try:
            tweet = parse_tweet(record)
        except TweetParseError as err:
            raise GoldFileError(path, number, f"not a post ssp can read ({err.reason}: {err})") from None
        found[str(tweet.id)] = record
    return found


def read_gold(path: str | Path, payloads: str | Path | None = None) -> GoldSet:
    """Read a labelled file (see the module docstring); raise :class:`GoldFileError` naming the line."""
    path = Path(path)
    joined = read_payloads(Path(payloads)) if payloads is not None else {}
    records = _rows(path)
    if not records:
        raise GoldFileError(path, None, "no posts in the file")
    rows, seen = [], {}
    for number, record in records:
        record = {str(k).strip().lower(): v for k, v in record.items()}
        post_id = record.get("id")
        if post_id is None or not str(post_id).strip():
            raise GoldFileError(path, number, "id is missing")
        post_id = str(post_id).strip()
        if post_id in seen:
            raise GoldFileError(path, number, f"id {post_id} repeats line {seen[post_id]}")
        seen[post_id] = number
        if "label" not in record:
            raise GoldFileError(path, number, "label is missing")
        label = _label(path, number, record["label"])
        lang = record.get("lang") or None
        if record.get("payload") not in (None, ""):
            fields = _from_payload(path, number, _json_object(path, number, record["payload"], "payload"))
        elif record.get("text") not in (None, ""):
            text = record["text"]
            if not isinstance(text, str):
                raise GoldFileError(path, number, f"text must be a string, got {type(text).__name__}")
            fields = _from_text(text, lang)
        elif post_id in joined:
            fields = _from_payload(path, number, joined[post_id])
        else:
            hint = f" and id {post_id} is not in {payloads}" if payloads is not None else (
                " (give the raw payloads with --payloads to join them by id)")
            raise GoldFileError(path, number, f"no text and no payload{hint}")
        if lang and not fields.get("lang"):
            fields["lang"] = lang
        kind = record.get("kind")
        rows.append({"id": post_id, **fields, "label": label, "kind": str(kind).strip() if kind else None})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["label"] = frame["label"].astype(int)
    return GoldSet(path, frame)
