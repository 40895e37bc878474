"""Scoring weak labels and served models against labelled files of real posts.

``gold`` reads the files (TSV, CSV or JSONL with ``id``, ``text`` or a raw payload, ``label``,
optional ``kind`` and ``lang``); ``scoring`` gets each post's score from the weak labels or a
served model; ``report`` turns scores into the figures, the worst errors and the charts; ``cli``
is ``ssp evaluate``.
"""
