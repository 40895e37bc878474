"""Active learning: which tweets to ask the annotator about, and retraining on the answers.

:mod:`ssp.active.strategies` ranks tweets (numpy only, cheap enough for every page of the
tagger); :mod:`ssp.active.retrain` turns new gold labels into a new served model version;
:mod:`ssp.active.simulate` measures whether the ranking saves labels (``ssp al simulate``).
"""
