"""The synthetic and replay sources, and the AI keyword list and matcher."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ssp.sources.replay import replay_payloads
from ssp.sources.synthetic import SyntheticTweet, SyntheticTweets, synthetic_payloads
from ssp.text import KeywordMatcher, load_ai_keywords, matches_ai_keywords

N = 2000


@pytest.fixture(scope="module")
def mix() -> list[SyntheticTweet]:
    return list(SyntheticTweets(seed=42).generate(N))


def _dump(payloads) -> list[str]:
    return [json.dumps(p, ensure_ascii=False) for p in payloads]


# ---------------------------------------------------------------- synthetic: determinism
def test_same_seed_gives_identical_payloads():
    first = _dump(synthetic_payloads(500, seed=7))
    generator = SyntheticTweets(seed=7)
    assert _dump(t.payload for t in generator.generate(500)) == first
    assert _dump(t.payload for t in generator.generate(500)) == first  # each call restarts
    assert _dump(synthetic_payloads(500, seed=8)) != first


def test_same_seed_identical_across_processes():
    code = (
        "import hashlib, json\n"
        "from ssp.sources.synthetic import synthetic_payloads\n"
        "h = hashlib.sha256()\n"
        "for p in synthetic_payloads(300, seed=3): h.update(json.dumps(p).encode())\n"
        "print(h.hexdigest())\n"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_ids_are_unique_increasing_snowflakes(mix):
    ids = [t.tweet_id for t in mix]
    assert all(0 < a < b < 2**63 for a, b in zip(ids, ids[1:], strict=False))
    inner = [int(t.payload["retweeted_status"]["id_str"]) for t in mix if "retweeted_status" in t.payload]
    inner += [int(tw["id"]) for t in mix for tw in t.payload.get("includes", {}).get("tweets", [])]
    assert inner and len(set(ids) | set(inner)) == len(ids) + len(inner)
    for tweet in mix:
        shown = tweet.payload["id_str"] if "id_str" in tweet.payload else tweet.payload["data"]["id"]
        assert shown == str(tweet.tweet_id)


def test_created_at_follows_a_fixed_clock(mix):
    tweets = pytest.importorskip("ssp.tweets")
    # v1.1 timestamps carry whole seconds only, so compare at that precision.
    times = [tweets.parse_tweet(t.payload).created_at.replace(microsecond=0) for t in mix]
    assert times == sorted(times)
    assert times[0].isoformat().startswith("2024-03-04T08:00")


# ---------------------------------------------------------------- synthetic: the mix
def test_mix_has_every_kind_of_tweet(mix):
    traits = Counter(trait for t in mix for trait in t.traits)
    for trait in ("retweet", "extended", "note_tweet", "duplicate", "near_duplicate", "non_english",
                  "trap", "implicit_ai", "v1", "v2"):
        assert traits[trait] >= 5, trait
    assert 0.25 <= sum(t.is_ai for t in mix) / N <= 0.45
    assert 0.2 <= traits["v2"] / N <= 0.4
    assert not any(t.is_ai for t in mix if "trap" in t.traits)


def _text(tweet: SyntheticTweet) -> str:
    payload = tweet.payload
    return payload["data"]["text"] if "data" in payload else payload["text"]


def test_traps_and_languages(mix, trap_mix):
    traps = " ".join(_text(t) for t in trap_mix)
    for phrase in ("Ai Weiwei", " ml of milk", "AI3", "enemy AI", "AI drivers", "Illustrator", "heifers", "AI Pacino"):
        assert phrase in traps, phrase
    langs = {t.payload["data"]["lang"] if "data" in t.payload else t.payload["lang"] for t in mix}
    assert {"en", "es", "fr", "de", "ja", "hi"} <= langs


def _full_text(tweet: SyntheticTweet) -> str:
    """The whole text of a tweet (or of the tweet it retweets), without ssp.tweets."""
    payload = tweet.payload
    if "data" in payload:
        item = (payload["includes"].get("tweets") or [payload["data"]])[0]
        return item.get("note_tweet", {}).get("text", item["text"])
    status = payload.get("retweeted_status") or payload
    return status.get("extended_tweet", {}).get("full_text", status["text"])


def _normal(text: str) -> str:
    return " ".join(re.sub(r"https?://\S+", "", text).lower().split())


def _lang(tweet: SyntheticTweet) -> str:
    return tweet.payload["data"]["lang"] if "data" in tweet.payload else tweet.payload["lang"]


@pytest.fixture(scope="module")
def big_mix() -> list[SyntheticTweet]:
    return list(SyntheticTweets(seed=3).generate(5000))


@pytest.fixture(scope="module")
def trap_mix() -> list[SyntheticTweet]:
    """Traps only: there are many kinds of them, each a small part of the default mix."""
    tweets = list(SyntheticTweets(seed=3, ai_share=0.0, trap_share=1.0, implicit_ai_share=0.0, hard_negative_share=0.0,
                                  news_share=0.0, spam_share=0.0).generate(3000))
    assert all("trap" in t.traits and not t.is_ai for t in tweets)
    return tweets


def test_texts_are_mostly_distinct(big_mix):
    texts = [_normal(_full_text(t)) for t in big_mix]
    assert len(set(texts)) / len(texts) >= 0.9


def test_duplicates_only_when_asked():
    heavy = list(SyntheticTweets(seed=3, duplicate_share=0.3, near_duplicate_share=0.2).generate(2000))
    texts = [_normal(_full_text(t)) for t in heavy]
    assert len(set(texts)) / len(texts) <= 0.6
    assert 0.25 <= sum("duplicate" in t.traits for t in heavy) / 2000 <= 0.35


def test_kinds_come_in_their_default_shares(big_mix):
    n = len(big_mix)
    traits = Counter(trait for t in big_mix for trait in t.traits)
    assert 0.24 <= sum(t.is_ai for t in big_mix) / n <= 0.32
    assert 0.05 <= traits["implicit_ai"] / n <= 0.11
    assert 0.07 <= traits["trap"] / n <= 0.15
    assert 0.22 <= traits["hard_negative"] / n <= 0.32  # everyday senses 12%, news 15%
    assert 0.12 <= traits["news"] / n <= 0.18
    assert 0.06 <= traits["spam"] / n <= 0.10
    assert 0.09 <= traits["field_terms"] / n <= 0.16
    assert 0.01 <= traits["duplicate"] / n <= 0.03
    assert 0.02 <= traits["near_duplicate"] / n <= 0.045
    assert 0.22 <= traits["non_english"] / n <= 0.34
    for tweet in big_mix:
        assert tweet.is_ai == ("ai" in tweet.traits)
        assert "implicit_ai" not in tweet.traits or tweet.is_ai
        assert not (tweet.traits & {"trap", "hard_negative", "spam"}) or not tweet.is_ai
        assert "news" not in tweet.traits or "hard_negative" in tweet.traits
        assert "field_terms" not in tweet.traits or tweet.is_ai
        assert ("non_english" in tweet.traits) == (_lang(tweet) != "en")
    # about a quarter of AI posts are not in English
    ai = [t for t in big_mix if t.is_ai]
    assert 0.18 <= sum("non_english" in t.traits for t in ai) / len(ai) <= 0.36


def test_many_languages_in_every_kind(mix, big_mix):
    assert len({_lang(t) for t in mix}) >= 10
    for trait in ("ai", "implicit_ai", "trap", "hard_negative", "news", "field_terms"):
        assert len({_lang(t) for t in big_mix if trait in t.traits}) >= 10, trait
    assert len({_lang(t) for t in big_mix}) >= 18


def test_implicit_ai_avoids_the_obvious_terms(big_mix):
    matcher = KeywordMatcher(load_ai_keywords())
    implicit = [t for t in big_mix if "implicit_ai" in t.traits]
    assert len(implicit) > 200
    assert sum(matcher.matches(_full_text(t)) for t in implicit) / len(implicit) <= 0.03
    # Posts in the field's broad vocabulary (field_terms, checked against the labelling lists in
    # their own test) go beyond the routing keywords on purpose.
    keyword_ai = [t for t in big_mix if t.is_ai and not t.traits & {"implicit_ai", "non_english", "field_terms"}]
    assert sum(matcher.matches(_full_text(t)) for t in keyword_ai) / len(keyword_ai) >= 0.7


def test_hard_negatives_use_the_ambiguous_words(big_mix, trap_mix):
    text = " ".join(_full_text(t).lower() for t in big_mix if "hard_negative" in t.traits)
    for word in ("big", "deep", "data", "network", "language", "intelligence", "model", "learning",
                 "training", "neural", "vision", "smart", "bot", "transformer"):
        assert re.search(rf"\b{word}", text), word
    traps = " ".join(_full_text(t) for t in trap_mix)
    for phrase in ("Ai Weiwei", "Ai Hoshino", "enemy AI", " ml ", "ML", "Transformers", "Claude", "python",
                   "Gemini", "llama", "copilot"):
        assert phrase.lower() in traps.lower(), phrase


def test_everyday_life_comes_with_and_without_ai(big_mix):
    # AI as people meet it, and the very same frames without AI: only the AI words tell them apart
    life = [t for t in big_mix if "everyday_life" in t.traits]
    assert sum(t.is_ai for t in life) >= 50 and sum(not t.is_ai for t in life) >= 50
    assert not any("trap" in t.traits or "hard_negative" in t.traits for t in life)
    off = SyntheticTweets(seed=3, everyday_life_share=0.0).generate(2000)
    assert not any("everyday_life" in t.traits for t in off)


def test_old_mix_is_still_available():
    old = list(SyntheticTweets(seed=42, ai_share=0.33, trap_share=0.04, implicit_ai_share=0.01,
                               hard_negative_share=0.0, news_share=0.0, spam_share=0.0,
                               field_terms_share=0.0, non_english_share=0.12,
                               duplicate_share=0.03).generate(N))
    assert 0.25 <= sum(t.is_ai for t in old) / N <= 0.45
    assert not any(t.traits & {"hard_negative", "news", "spam", "field_terms"} for t in old)


def test_news_and_spam_are_everyday_posts(big_mix):
    matcher = KeywordMatcher(load_ai_keywords())
    news = [t for t in big_mix if "news" in t.traits]
    spam = [t for t in big_mix if "spam" in t.traits]
    for kind in (news, spam):
        assert not any(t.is_ai for t in kind)
        assert sum(matcher.matches(_full_text(t)) for t in kind) / len(kind) <= 0.01
    text = " ".join(_full_text(t).lower() for t in news)
    for word in ("research", "science", "scientists", "study", "data", "digital", "tech", "technology",
                 "computer", "software", "app", "online", "insights", "business", "startup", "innovation",
                 "neuroscience", "engineering", "rocket science", "deep state", "big business", "pandemic",
                 "vaccine", "earnings", "review", "cybersecurity", "update", "outage", "new study finds",
                 "launch", "climate report"):
        assert re.search(rf"\b{word}", text), word
    assert len({_lang(t) for t in news}) >= 12
    text = " ".join(_full_text(t) for t in spam)
    for phrase in ("PDF", "#np", "OFF", "#FollowTrain", "to the moon", "GIVEAWAY", "horoscope", "fancam", "🙏"):
        assert phrase in text, phrase


def _field_terms() -> set[str]:
    from ssp.sources.synthetic import _field_vocab

    field = _field_vocab()
    words = {w for words in field.terms.values() for w in words}
    return {w.lower() for w in words} | {w.lower() for kinds in field.context.values() for _, ws in kinds for w in ws}


def test_field_terms_come_from_the_labelling_vocabulary(big_mix):
    from ssp.sources.synthetic import _field_vocab

    terms = _field_terms()
    field = [t for t in big_mix if "field_terms" in t.traits]
    assert len(field) > 400
    assert all(any(term in _full_text(t).lower() for term in terms) for t in field)
    # Implicit ones pair words of two ml_context kinds, never the obvious terms.
    context = _field_vocab().context["en"]
    implicit = [_full_text(t).lower() for t in field if "implicit_ai" in t.traits and _lang(t) == "en"]
    assert len(implicit) > 60
    two_kinds = [sum(any(re.search(rf"(?<!\w){re.escape(w.lower())}(?!\w)", text) for w in words)
                     for _, words in context) >= 2 for text in implicit]
    assert sum(two_kinds) / len(two_kinds) >= 0.95
    # Many terms of the field are seen, not a handful.
    text = " ".join(_full_text(t).lower() for t in field)
    seen = {w for w in _field_vocab().terms["t_jargon"] if w.lower() in text}
    assert len(seen) >= 60


def test_field_terms_go_to_their_own_language():
    from ssp.sources.synthetic import _field_vocab, _script_lang

    assert _script_lang("機械学習") == "ja" and _script_lang("머신러닝") == "ko"
    assert _script_lang("học máy") == "vi" and _script_lang("derin öğrenme") == "tr"
    assert _script_lang("机器学习") is None and _script_lang("yapay zeka") == "en"
    terms = _field_vocab().terms
    assert "inteligencia artificial" in terms["t_mixed"]
    assert "inteligencia artificial" not in {w for key, ws in terms.items() if key != "t_mixed" for w in ws}
    assert all(re.search(r"[\uac00-\ud7af]", w) for w in terms["t_ko"])
    assert terms["t_lib"] == tuple(sorted(terms["t_lib"])) and "PyTorch" in terms["t_lib"]


def test_labelling_folder_follows_ssp_data_dir(tmp_path, monkeypatch):
    from ssp.sources.synthetic import _labeling_dir

    monkeypatch.setenv("SSP_DATA_DIR", str(tmp_path))
    assert _labeling_dir().name == "labeling" and _labeling_dir().parent.name == "data"
    (tmp_path / "labeling").mkdir()
    assert _labeling_dir() == tmp_path / "labeling"


def test_same_seed_same_traits_and_truth():
    first = [(t.tweet_id, t.is_ai, t.traits) for t in SyntheticTweets(seed=11).generate(3000)]
    assert [(t.tweet_id, t.is_ai, t.traits) for t in SyntheticTweets(seed=11).generate(3000)] == first
    assert [(t.tweet_id, t.is_ai, t.traits) for t in SyntheticTweets(seed=12).generate(3000)] != first


def test_duplicates_repeat_an_earlier_text(mix):
    tweets = pytest.importorskip("ssp.tweets")

    def loose(text: str) -> str:
        return " ".join(re.sub(r"https://t\.co/\w+", "", text).lower().split())

    seen_exact: set[str] = set()
    seen_loose: set[str] = set()
    for tweet in mix:
        text = tweets.parse_tweet(tweet.payload).text
        if "duplicate" in tweet.traits:
            assert text in seen_exact
        if "near_duplicate" in tweet.traits:
            assert loose(text) in seen_loose
        seen_exact.add(text)
        seen_loose.add(loose(text))


def _check_entities(text: str, entities: dict, v2: bool) -> int:
    checked = 0
    for tag in entities.get("hashtags", []):
        start, end = (tag["start"], tag["end"]) if v2 else tag["indices"]
        assert text[start:end] == "#" + (tag["tag"] if v2 else tag["text"])
        checked += 1
    for url in entities.get("urls", []):
        start, end = (url["start"], url["end"]) if v2 else url["indices"]
        assert text[start:end] == url["url"] and url["url"].startswith("https://t.co/")
        assert not url["expanded_url"].startswith("https://t.co/")
        checked += 1
    return checked


def test_entity_indices_point_into_their_text(mix):
    checked = 0
    for tweet in mix:
        payload = tweet.payload
        if "data" in payload:
            for item in [payload["data"], *payload["includes"].get("tweets", [])]:
                checked += _check_entities(item["text"], item.get("entities", {}), v2=True)
                if "note_tweet" in item:
                    note = item["note_tweet"]
                    checked += _check_entities(note["text"], note.get("entities", {}), v2=True)
        else:
            for status in (payload, payload.get("retweeted_status") or {}):
                if status:
                    checked += _check_entities(status["text"], status["entities"], v2=False)
                if "extended_tweet" in status:
                    ext = status["extended_tweet"]
                    checked += _check_entities(ext["full_text"], ext["entities"], v2=False)
    assert checked > N // 2


def test_retweet_and_long_shapes(mix):
    for tweet in mix:
        payload = tweet.payload
        if "data" in payload:
            data, includes = payload["data"], payload["includes"]
            assert data["author_id"] in {u["id"] for u in includes["users"]}
            assert len(data["text"]) <= 280
            if "retweet" in tweet.traits:
                original = includes["tweets"][0]
                assert data["referenced_tweets"] == [{"type": "retweeted", "id": original["id"]}]
                assert data["text"].startswith("RT @")
        else:
            assert len(payload["text"]) <= 140
            if "retweet" in tweet.traits:
                author = payload["retweeted_status"]["user"]["screen_name"]
                assert payload["text"].startswith(f"RT @{author}: ")
            elif "extended" in tweet.traits:
                assert payload["truncated"] is True
                assert len(payload["extended_tweet"]["full_text"]) > 140


def test_every_payload_parses_to_its_full_text(mix):
    tweets = pytest.importorskip("ssp.tweets")
    long_or_retweeted = 0
    for tweet in mix:
        parsed = tweets.parse_tweet(tweet.payload)
        assert parsed.id == tweet.tweet_id
        assert parsed.is_retweet == ("retweet" in tweet.traits)
        shown = _text(tweet)
        if "retweet" in tweet.traits:
            shown = shown.split(": ", 1)[1]
        if shown.endswith("…"):
            # The payload's visible text is cut; the parsed text must be the whole of it.
            head = shown[:-1].rsplit(" https://t.co/", 1)[0] if "extended" in tweet.traits else shown[:-1]
            assert parsed.text.startswith(head.rstrip("…")) and len(parsed.text) > len(head)
            assert not parsed.text.endswith("…")
            long_or_retweeted += 1
        elif "extended" in tweet.traits and "retweet" not in tweet.traits:
            assert len(parsed.text) > 140
            long_or_retweeted += 1
    assert long_or_retweeted > 50


def test_rejects_bad_shares():
    with pytest.raises(ValueError, match="v2_share"):
        SyntheticTweets(v2_share=1.5)
    with pytest.raises(ValueError, match="hard_negative_share"):
        SyntheticTweets(ai_share=0.5, hard_negative_share=0.6)


def test_generation_is_fast():
    # The benchmark figure (200,000 tweets) is in the module report; this only guards
    # against an order-of-magnitude regression on a slow CI machine.
    started = time.perf_counter()
    count = sum(1 for _ in synthetic_payloads(20_000, seed=1))
    assert count == 20_000
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- keywords
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Machine learning is eating the world", True),
        ("machine-learning at scale", True),
        ("Loving #MachineLearning today", True),
        ("#AI is everywhere", True),
        ("#ai art", True),
        ("AI will change medicine", True),
        ("LLMs are autocomplete on steroids", True),
        ("new PyTorch release", True),
        ("the enemy AI in this game is brutal", True),  # a keyword can't tell; the classifier must
        ("the maid cleaned the room", False),
        ("add 200 ml of milk", False),
        ("mezcla 500 ml de agua", False),
        ("Ai Weiwei opens a new show", False),
        ("Allen Iverson AI3 forever", False),
        ("a fine day for a walk", False),
        ("", False),
        ("ML engineers wanted", True),
        ("機械学習を勉強中", True),
        ("inteligencia artificial en la medicina", True),
    ],
)
def test_keyword_matcher(text, expected):
    keywords = load_ai_keywords()
    assert matches_ai_keywords(text, keywords) is expected
    assert KeywordMatcher(keywords).matches(text) is expected


def test_keyword_list_is_sane():
    keywords = load_ai_keywords()
    assert 40 <= len(keywords) <= 70
    assert {"artificial intelligence", "machine learning", "#AI", "ML"} <= set(keywords)
    assert not any(k.startswith("# ") or not k.strip() for k in keywords)


def test_keyword_file_comments_and_location(tmp_path, monkeypatch):
    (tmp_path / "ai_keywords.txt").write_text("# a comment\n#\n\nAI  # inline\n#DeepLearning\nai\nneural net\n")
    assert load_ai_keywords(tmp_path / "ai_keywords.txt") == ["AI", "#DeepLearning", "neural net"]
    monkeypatch.setenv("SSP_DATA_DIR", str(tmp_path))
    assert load_ai_keywords() == ["AI", "#DeepLearning", "neural net"]
    monkeypatch.setenv("SSP_DATA_DIR", str(tmp_path / "nowhere"))
    assert "machine learning" in load_ai_keywords()  # the repo's list is the fallback
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_ai_keywords(tmp_path / "missing.txt")
    only = KeywordMatcher(["#DeepLearning"])
    assert only.matches("#deeplearning rocks") and not only.matches("deep learning rocks")


# ---------------------------------------------------------------- replay
def _write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_replay_jsonl_keeps_bad_lines_as_bytes(tmp_path):
    path = tmp_path / "tweets.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": 1}\r\n\n   \n{"id": 2\n[1, 2]\n{"id": 3}')
    assert list(replay_payloads(path)) == [{"id": 1}, b'{"id": 2', b"[1, 2]", {"id": 3}]


def test_replay_round_trips_synthetic_payloads(tmp_path):
    payloads = list(synthetic_payloads(200, seed=9))
    path = _write_jsonl(tmp_path / "s.jsonl", [json.dumps(p).encode() for p in payloads])
    assert list(replay_payloads(path)) == payloads


def test_replay_gzip(tmp_path):
    path = tmp_path / "tweets.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"id": 1}\nnot json\n{"id": 2}\n')
    assert list(replay_payloads(str(path))) == [{"id": 1}, b"not json", {"id": 2}]


def test_replay_folder_in_name_order(tmp_path):
    (tmp_path / "b.json").write_text('[{"id": 2}, 7, {"id": 3}]')
    (tmp_path / "a.json").write_text('{"id": 1}')
    _write_jsonl(tmp_path / "c.jsonl", [b'{"id": 4}'])
    with gzip.open(tmp_path / "d.jsonl.gz", "wb") as handle:
        handle.write(b'{"id": 5}\n')
    (tmp_path / "e.json").write_text('{"id": 6,')
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.jsonl").write_text('{"id": 99}\n')
    assert list(replay_payloads(tmp_path)) == [
        {"id": 1}, {"id": 2}, b"7", {"id": 3}, {"id": 4}, {"id": 5}, b'{"id": 6,'
    ]


def test_replay_missing_path_fails_at_the_call(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        replay_payloads(missing)


def test_replay_loop(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", [b'{"id": 1}', b'{"id": 2}', b"oops"])
    looped = list(itertools.islice(replay_payloads(path, loop=True), 7))
    assert looped == [{"id": 1}, {"id": 2}, b"oops"] * 2 + [{"id": 1}]
    (tmp_path / "empty").mkdir()
    assert list(replay_payloads(tmp_path / "empty", loop=True)) == []
