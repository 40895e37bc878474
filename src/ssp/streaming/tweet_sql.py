"""The canonical tweet rule (:func:`ssp.tweets.parse_tweet`) in Spark SQL, for the records it reads exactly.

A stream over tweets need not hand every raw payload to Python: :func:`plain_tweets` reads, on the
JVM, the fields the rule needs (``from_json`` with the X API v1.1 and v2 fields it looks at, then
``coalesce`` of ``note_tweet`` / ``extended_tweet`` / the retweeted status for the full text), and
marks a record ``plain`` when Spark SQL's reading is certainly the one ``parse_tweet`` makes: the
same id, time, text (HTML-unescaped), language, user, links, hashtags and retweet. Every other
record (Bluesky events, bare v2 objects, anything not valid JSON or not a tweet, and the rare
payloads where Jackson and the Python rule could differ) keeps its raw value for the Python parser,
so dead letters and edge cases stay exactly those of ``parse_tweet``, which stays the one definition
(``tests/test_tweet_sql.py`` holds the two to each other on the fixtures, the synthetic stream and
fuzzed variants).

A record is plain when all of these hold, and otherwise it falls back:

* its value is valid UTF-8 of at most ``max_bytes`` bytes, starts with ``{`` and ends with ``}``,
  holds no NUL (as ``\\u0000`` either), no escaped backslash, no lone surrogate escape, no escaped
  printable ASCII character (a key spelled with escapes), no number that overflows a double
  (orjson refuses those, Jackson skips them) and no ``"media_key": null`` (a key whose presence,
  not value, matters);
* it is exactly one JSON object as Jackson reads it strictly (no single quotes, NaN, comments, ...)
  with nothing after it: the value's last ``}`` is replaced by a sentinel member, which Jackson must
  read as the object's last member; no field has another JSON type than the schema's (Spark then
  fills the corrupt-record column);
* it is an X API v1.1 status (``id_str`` present) or a v2 response (``data``), not a Bluesky event
  (``kind``); a retweet nests once;
* every string the rule takes is a JSON string: Spark renders a number, boolean, object or array
  read as a string as its JSON text, so a value that could be such a rendering (``"5"``, ``"true"``,
  ``"{...}"``) falls back; ids are digit strings in range; the time is one of the two forms the rule
  reads, in plain ranges;
* every ``&`` in the text starts ``&amp;``, ``&lt;``, ``&gt;`` or ``&quot;`` or is followed by a
  character that never starts an HTML entity (space, tab, newline, form feed, ``<``, ``&``, ``;``, the
  end): those are the only references Spark SQL unescapes, as ``html.unescape`` does.
"""

from __future__ import annotations

__all__ = ["PLAIN_TWEET_COLUMNS", "TWEET_JSON_SCHEMA", "plain_tweets"]

# The columns plain_tweets adds for a plain record (null for the others): the canonical tweet's fields,
# its arrays also as PostgreSQL text[] literals (ssp.storage.postgres.tweet_row's form)
PLAIN_TWEET_COLUMNS = ("id", "created_at", "text", "lang", "user_screen_name", "urls", "hashtags", "urls_literal",
                       "hashtags_literal", "is_retweet", "retweet_of")

# A member the SQL rule puts in place of the value's closing brace: Jackson reads it as the object's last
# member only when the value is one object and nothing after it. Values holding the name fall back.
_SENTINEL = "ssp_tweet_sql_end"
_SENTINEL_MEMBER = b',"' + _SENTINEL.encode() + b'":1}'
_CORRUPT = "_ssp_corrupt_record"

_V1_ENTITIES = ("STRUCT<urls: ARRAY<STRUCT<url: STRING, expanded_url: STRING, media_key: STRING>>, "
                "hashtags: ARRAY<STRUCT<text: STRING>>>")
_V2_ENTITIES = ("STRUCT<urls: ARRAY<STRUCT<url: STRING, expanded_url: STRING, media_key: STRING>>, "
                "hashtags: ARRAY<STRUCT<tag: STRING>>>")
# the fields of a v1.1 status the rule reads for its text, entities and id
_V1_SOURCE = (("id_str", "STRING"), ("id", "STRING"), ("text", "STRING"), ("full_text", "STRING"),
              ("entities", _V1_ENTITIES), ("extended_tweet", f"STRUCT<full_text: STRING, entities: {_V1_ENTITIES}>"))
_V2_NOTE = f"STRUCT<text: STRING, entities: {_V2_ENTITIES}>"
_V2_DATA = (f"STRUCT<id: STRING, created_at: STRING, text: STRING, lang: STRING, author_id: STRING, "
            f"entities: {_V2_ENTITIES}, note_tweet: {_V2_NOTE}, referenced_tweets: ARRAY<STRUCT<type: STRING, "
            f"id: STRING>>>")
_V2_INCLUDED = f"STRUCT<id: STRING, text: STRING, entities: {_V2_ENTITIES}, note_tweet: {_V2_NOTE}>"
TWEET_JSON_SCHEMA = (
    f"kind STRING, data {_V2_DATA}, includes STRUCT<tweets: ARRAY<{_V2_INCLUDED}>, users: ARRAY<STRUCT<id: STRING, "
    f"username: STRING>>>, created_at STRING, lang STRING, user STRUCT<screen_name: STRING>, "
    + "".join(f"{name} {kind}, " for name, kind in _V1_SOURCE)
    + f"retweeted_status STRUCT<{''.join(f'{name}: {kind}, ' for name, kind in _V1_SOURCE)}retweeted_status: STRING>, "
    f"{_SENTINEL} INT, {_CORRUPT} STRING"
)
# Jackson as strict as orjson: what it would accept beyond JSON fails the record instead
_JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT, "allowSingleQuotes": "false",
                 "allowNonNumericNumbers": "false", "allowComments": "false", "allowUnquotedFieldNames": "false",
                 "allowNumericLeadingZeros": "false", "allowBackslashEscapingAnyCharacter": "false",
                 "allowUnquotedControlChars": "false"}

# What Spark renders when it reads a number, boolean, object or array as a string: such a value may not
# have been a JSON string
_RENDERED = r"\A(?:-?[0-9]++(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+|true|false|(?s:\{.*\}|\[.*\]))\z"
_DIGITS = r"\A[0-9]++\z"
_ID = r"\A[0-9]{1,19}+\z"
# a lone surrogate escape (orjson refuses it, Jackson makes it '?'), or an escaped printable ASCII character
_BAD_ESCAPE = (r"\\u[dD][89abAB][0-9a-fA-F]{2}+(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
               r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u00[2-7][0-9a-fA-F]")
# a number that may overflow a double (orjson refuses it; a skipped one is not even read by Jackson): one with
# a three-digit exponent or 200 digits before its point, where a value starts (some strings too, which only
# makes them fall back)
_HUGE_NUMBER = r"[:,\[][ \t\n\r]*+-?+(?:[0-9]{200}|[0-9]++(?:\.[0-9]++)?+[eE][+-]?+[0-9]{3})"
_NULL_MEDIA_KEY = r'"media_key"[ \t\n\r]*+:[ \t\n\r]*+null'
# an '&' that html.unescape might turn into something the SQL rule does not
_OTHER_REFERENCE = r"&(?!(?:amp|lt|gt|quot);|[\t\n\f <&;]|\z)"
_MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec"
_V1_TIME = (r"\A(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
            r"(0[1-9]|[12][0-9]|3[01]) ((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]) "
            r"([+-](?:0[0-9]|1[0-7]))([0-5][0-9]) ([12][0-9]{3})\z")
_ISO_TIME = (r"\A[12][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
             r"(?:\.[0-9]{1,6})?+(?:Z|[+-](?:0[0-9]|1[0-7]):[0-5][0-9])\z")
_LONG = 1 << 30  # a substring length meaning "to the end"


def _string(value):
    """True when ``value`` (a field read as STRING) is null or certainly was a JSON string."""
    return value.isNull() | ~value.rlike(_RENDERED)


def _tweet_id(value):
    """``value`` as ``ssp.tweets._tweet_id`` reads it (digits, or a JSON integer Spark rendered as digits), or null."""
    from pyspark.sql import functions as F

    number = value.try_cast("long")
    return F.when(value.rlike(_ID) & (number > 0), number)


def _created_at(value):
    """A v1.1 or plain ISO 8601 time as ``ssp.tweets._parse_timestamp`` reads it; null for any other string."""
    from pyspark.sql import functions as F

    def part(index: int):
        return F.regexp_extract(value, _V1_TIME, index)

    month = F.lpad(((F.instr(F.lit(_MONTHS), part(1)) + 2) / 3).cast("int").cast("string"), 2, "0")
    v1 = F.concat(part(6), F.lit("-"), month, F.lit("-"), part(2), F.lit("T"), part(3), part(4), F.lit(":"), part(5))
    iso = F.when(value.rlike(_V1_TIME), v1).when(value.rlike(_ISO_TIME), value)
    return iso.try_cast("timestamp")


def _on_tco(url):
    """``ssp.tweets._on_tco`` in SQL: whether the link's host is t.co or under it."""
    from pyspark.sql import functions as F

    lowered = F.lower(url)
    first = F.instr(lowered, "://")  # str.partition splits at the first '://'
    after = F.when(first > 0, lowered.substr(first + 3, F.lit(_LONG)))
    rest = (F.when(F.coalesce(after, F.lit("")) != "", after)
            .when(lowered.startswith("//"), lowered.substr(F.lit(3), F.lit(_LONG))).otherwise(lowered))
    host = F.substring_index(F.substring_index(F.regexp_extract(rest, r"\A[^/?#]*+", 0), "@", -1), ":", 1)
    return (F.instr(lowered, "t.co") > 0) & ((host == "t.co") | host.endswith(".t.co"))


def _link(item):
    """A URL entity's link as ``ssp.tweets._entity_url`` reads it (before the t.co test): null for a media item."""
    from pyspark.sql import functions as F

    expanded = item["expanded_url"]
    return F.when(item["media_key"].isNull(),
                  F.when(F.coalesce(expanded, F.lit("")) != "", expanded).otherwise(item["url"]))


def _link_ok(item):
    """Whether the SQL rule reads URL entity ``item`` exactly: an object whose link, if any, was a JSON string."""
    from pyspark.sql import functions as F

    expanded = item["expanded_url"]
    return item.isNotNull() & (item["media_key"].isNotNull() | F.when(
        F.coalesce(expanded, F.lit("")) != "", _string(expanded)).otherwise(_string(item["url"])))


def _unescape(text):
    """``html.unescape`` for the references the SQL rule takes (see the module docstring)."""
    from pyspark.sql import functions as F

    out = text
    for reference, character in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&")):
        out = F.replace(out, F.lit(reference), F.lit(character))
    return F.when(F.instr(text, "&") > 0, out).otherwise(text)


def _text_ok(text):
    from pyspark.sql import functions as F

    return text.isNotNull() & _string(text) & ((F.instr(text, "&") == 0) | ~text.rlike(_OTHER_REFERENCE))


def _array_literal(values):
    """A text[] literal of ``values``, as ``ssp.storage.postgres.pg_array_literal`` writes it."""
    from pyspark.sql import functions as F

    quoted = F.transform(values, lambda v: F.concat(
        F.lit('"'), F.replace(F.replace(v, F.lit("\\"), F.lit("\\\\")), F.lit('"'), F.lit('\\"')), F.lit('"')))
    return F.concat(F.lit("{"), F.array_join(quoted, ","), F.lit("}"))


def _first(items, predicate):
    """The first item of array ``items`` for which ``predicate`` holds, else null."""
    from pyspark.sql import functions as F

    return F.get(F.filter(items, predicate), 0)


def _all(items, predicate):
    """Whether ``predicate`` holds for every item of ``items`` (true for a null or empty array)."""
    from pyspark.sql import functions as F

    return F.coalesce(F.forall(items, predicate), F.lit(True))


def plain_tweets(records, *, max_bytes: int):
    """``records`` (a DataFrame with a binary ``value``: the Kafka stream) with the boolean column ``plain`` and,
    for the plain records, :data:`PLAIN_TWEET_COLUMNS`; ``key`` and ``value`` are kept for the other records
    only (null for plain ones), for the Python parser.

    A plain record is one :func:`ssp.tweets.parse_tweet` accepts, and the columns are the values it gives
    (``created_at`` a timestamp, ``urls``/``hashtags`` arrays and also ``text[]`` literals); the platform is
    ``x`` and there is no AT URI or CID. A record that is not plain may still be a tweet. Apply it to the
    stream once, so that Spark analyses these expressions once, not every micro-batch.

    The rule runs in steps, one ``select`` each, so that each array function is evaluated once per record
    (Spark does not share a higher-order function's result between the expressions that use it).
    """
    from pyspark.sql import functions as F

    value = F.col("value")
    text = value.cast("string")
    size = F.octet_length(value)
    backslash_u = F.instr(text, "\\u") > 0
    shaped = F.coalesce(
        size.between(2, max_bytes) & text.startswith("{") & text.endswith("}") & F.is_valid_utf8(text)
        & (F.instr(text, "\\\\") == 0) & (F.instr(text, "\x00") == 0) & (F.instr(text, _SENTINEL) == 0)
        & (~backslash_u | ((F.instr(text, "\\u0000") == 0) & ~text.rlike(_BAD_ESCAPE)))
        & ((F.instr(text, '"media_key"') == 0) | ~text.rlike(_NULL_MEDIA_KEY))
        & ~text.rlike(_HUGE_NUMBER), F.lit(False))
    # the value with its closing brace replaced by the sentinel member
    closed = F.concat(F.substring(value, 1, size - 1), F.lit(bytearray(_SENTINEL_MEMBER))).cast("string")
    kept = records.columns
    c = F.col
    step = records.select(*kept, F.when(shaped, F.from_json(closed, TWEET_JSON_SCHEMA, _JSON_OPTIONS)).alias("_p"))
    p, data, includes, retweeted = c("_p"), c("_p.data"), c("_p.includes"), c("_p.retweeted_status")
    is_v2 = data.isNotNull()
    # 1. which tweet the text comes from: the v1.1 retweeted status, or the v2 retweet's included original
    read_whole = (p[_SENTINEL] == 1) & p[_CORRUPT].isNull() & p["kind"].isNull()
    v1_ok = p["id_str"].isNotNull() & (retweeted.isNull() | retweeted["retweeted_status"].isNull())
    v2_ok = (_all(data["referenced_tweets"], lambda r: r.isNotNull())
             & _all(includes["tweets"], lambda t: t.isNotNull()) & _all(includes["users"], lambda u: u.isNotNull())
             & (data["author_id"].isNull() | data["author_id"].rlike(_DIGITS)))
    step = step.select(*kept, "_p", is_v2.alias("_v2"),
                       F.coalesce(read_whole & F.when(is_v2, v2_ok).otherwise(v1_ok), F.lit(False)).alias("_ok"),
                       F.when(is_v2, _first(data["referenced_tweets"], lambda r: r["type"] == "retweeted"))
                       .alias("_ref"),
                       F.when(is_v2, _first(includes["users"], lambda u: u["id"] == data["author_id"])).alias("_user"))
    ref = c("_ref")
    ref_ok = ref.isNull() | F.coalesce(ref["id"].rlike(_DIGITS), F.lit(False))
    original = F.when(ref.isNotNull(), _first(includes["tweets"], lambda t: t["id"] == ref["id"]))
    step = step.select(*kept, "_p", "_v2", (c("_ok") & ref_ok).alias("_ok"), "_ref", "_user", original.alias("_found"))
    # 2. the text, its entities and the other fields, per shape
    found = c("_found")

    def v1_source(name: str):
        return F.when(retweeted.isNotNull(), retweeted[name]).otherwise(p[name])

    def v2_source(name: str):
        return F.when(found.isNotNull(), found[name]).otherwise(data[name])

    v1_long = v1_source("extended_tweet")["full_text"]
    v1_entities = F.when(v1_long.isNotNull(), v1_source("extended_tweet")["entities"]).otherwise(v1_source("entities"))
    v2_long = v2_source("note_tweet")["text"]
    v2_entities = F.when(v2_long.isNotNull(), v2_source("note_tweet")["entities"]).otherwise(v2_source("entities"))
    v2 = c("_v2")

    def pick(v2_value, v1_value):
        return F.when(v2, v2_value).otherwise(v1_value)

    step = step.select(
        *kept, "_ok",
        pick(_tweet_id(data["id"]), _tweet_id(p["id_str"])).alias("_id"),
        pick(data["created_at"], p["created_at"]).alias("_time"),
        pick(F.coalesce(v2_long, v2_source("text")),
             F.coalesce(v1_long, v1_source("full_text"), v1_source("text"))).alias("_text"),
        pick(data["lang"], p["lang"]).alias("_lang"),
        pick(c("_user")["username"], p["user"]["screen_name"]).alias("_user_screen_name"),
        pick(v2_entities["urls"], v1_entities["urls"]).alias("_items"),
        pick(F.transform(v2_entities["hashtags"], lambda h: h["tag"]),
             F.transform(v1_entities["hashtags"], lambda h: h["text"])).alias("_tags"),
        pick(ref.isNotNull(), retweeted.isNotNull()).alias("_is_retweet"),
        pick(_tweet_id(ref["id"]), _tweet_id(F.coalesce(retweeted["id_str"], retweeted["id"]))).alias("_retweet_of"))
    # 3. whether SQL's reading is parse_tweet's, and the values
    items, tags, tweet_text = c("_items"), c("_tags"), c("_text")
    plain = (c("_ok") & c("_id").isNotNull() & _text_ok(tweet_text) & _string(c("_lang"))
             & _string(c("_user_screen_name")) & _all(items, _link_ok)
             & _all(tags, lambda t: t.isNotNull() & _string(t)))
    links = F.filter(F.transform(items, _link), lambda u: u.isNotNull() & (u != "") & ~_on_tco(u))
    hashtags = F.filter(F.transform(tags, lambda t: F.regexp_replace(t, r"\A#++", "")), lambda t: t != "")
    empty = F.array().cast("array<string>")
    step = step.select(*kept, F.coalesce(plain, F.lit(False)).alias("_plain"), "_id", _created_at(c("_time"))
                       .alias("_created_at"), "_text", "_lang", "_user_screen_name",
                       F.coalesce(F.array_distinct(links), empty).alias("_urls"),
                       F.coalesce(F.array_distinct(hashtags), empty).alias("_hashtags"), "_is_retweet", "_retweet_of")
    step = step.select(*kept, (c("_plain") & c("_created_at").isNotNull()).alias("plain"),
                       *(c(f"_{name}") for name in PLAIN_TWEET_COLUMNS if not name.endswith("_literal")))
    is_plain = c("plain")
    columns = {name: F.when(is_plain, c(f"_{name}")).alias(name) for name in PLAIN_TWEET_COLUMNS
               if not name.endswith("_literal")}
    columns["text"] = F.when(is_plain, _unescape(c("_text"))).alias("text")
    columns["urls_literal"] = F.when(is_plain, _array_literal(c("_urls"))).alias("urls_literal")
    columns["hashtags_literal"] = F.when(is_plain, _array_literal(c("_hashtags"))).alias("hashtags_literal")
    out = [F.when(~is_plain, c(name)).alias(name) if name in ("key", "value") else c(name) for name in kept]
    return step.select(*out, "plain", *(columns[name] for name in PLAIN_TWEET_COLUMNS))
