"""The labelling functions (ssp.labeling.functions) on hand-written tweets, traps included; pandas and
numpy rows; shipping to Spark; keyword-list errors; and precision against the synthetic stream's truth."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark import cloudpickle
from snorkel.labeling import PandasLFApplier

from ssp.labeling import functions
from ssp.labeling.functions import (
    ABSTAIN,
    AI,
    KEYWORD_LISTS,
    NOT_AI,
    LabelingFunctionError,
    default_keyword_dir,
    lf_names,
    make_lfs,
)
from ssp.sources.synthetic import SyntheticTweets
from ssp.text import KeywordMatcher, load_ai_keywords
from ssp.tweets import parse_tweet

REPO_ROOT = Path(__file__).resolve().parents[1]


def tweet(text: str, urls=(), hashtags=(), lang: str | None = "en") -> dict:
    return {"text": text, "urls": list(urls), "hashtags": list(hashtags), "lang": lang,
            "user_screen_name": "someone", "is_retweet": False}


ARXIV = "https://arxiv.org/abs/2401.00001"

# (labelling function, expected vote, row). Every function has rows where it votes and rows where
# it must abstain; the traps sit with the function they could fool.
EXAMPLES = [
    ("mentions_ai", AI, tweet("Generative AI is changing how we write code")),
    ("mentions_ai", AI, tweet("Artificial-intelligence policy is finally on the agenda")),
    ("mentions_ai", AI, tweet("so much hype this year", hashtags=["AI"])),
    ("mentions_ai", ABSTAIN, tweet("Ai Weiwei's sunflower seeds installation lives rent free in my head")),
    ("mentions_ai", ABSTAIN, tweet("the enemy AI in this game is brutal, died 40 times on the first boss")),
    ("mentions_ai", ABSTAIN, tweet("The maid cafe in Akihabara was so much fun")),
    ("mentions_ai", ABSTAIN, tweet("Throwback to AI3 stepping over Tyronn Lue #NBA", hashtags=["NBA"])),
    ("mentions_ai", ABSTAIN, tweet("AI FROM OSHI NO KO DESERVED BETTER")),
    ("mentions_machine_learning", AI, tweet("Spending my weekends on machine learning")),
    ("mentions_machine_learning", AI, tweet("We are hiring an ML engineer, remote friendly")),
    ("mentions_machine_learning", AI, tweet("Belajar machine learning itu seru", lang="in")),
    ("mentions_machine_learning", AI, tweet("new course out", hashtags=["MachineLearning"])),
    ("mentions_machine_learning", ABSTAIN, tweet("ADD 200 ML OF MILK AND STIR")),
    ("mentions_machine_learning", ABSTAIN, tweet("main ML yuk, push rank malam ini", lang="in")),
    ("mentions_deep_learning", AI, tweet("Our neural networks finally converge")),
    ("mentions_deep_learning", AI, tweet("Diffusion models explained in one thread")),
    ("mentions_deep_learning", ABSTAIN, tweet("Transformers: Rise of the Beasts was better than expected")),
    ("mentions_deep_learning", ABSTAIN, tweet("CNN reports heavy rain in the north")),
    ("mentions_nlp", AI, tweet("LLMs hallucinating citations again")),
    ("mentions_nlp", AI, tweet("A sentiment analysis demo for product reviews")),
    ("mentions_nlp", ABSTAIN, tweet("My love language is acts of service")),
    ("mentions_computer_vision", AI, tweet("Object detection on drone footage is hard")),
    ("mentions_computer_vision", ABSTAIN, tweet("Made a vision board for next year")),
    ("mentions_data_science", AI, tweet("Data scientists spend 80% of the time cleaning data")),
    ("mentions_data_science", AI, tweet("Top 5% on Kaggle with a simple baseline")),
    ("mentions_data_science", ABSTAIN, tweet("My mobile data ran out again")),
    ("mentions_ml_library", AI, tweet("scikit-learn 1.5 is out")),
    ("mentions_ml_library", AI, tweet("pytorch eats all my memory")),
    ("mentions_ml_library", ABSTAIN, tweet("The pandas at the zoo are adorable")),
    ("mentions_ml_library", ABSTAIN, tweet("JAX vs TEN tonight, who you got")),
    ("mentions_ai_lab_model_or_researcher", AI, tweet("ChatGPT wrote my cover letter")),
    ("mentions_ai_lab_model_or_researcher", AI, tweet("Great interview with Yann LeCun")),
    ("mentions_ai_lab_model_or_researcher", ABSTAIN, tweet("Happy birthday to my best friend @karpathy!")),
    ("mentions_ai_lab_model_or_researcher", ABSTAIN, tweet("Roberta made lasagna tonight")),
    ("mentions_ml_venue", AI, tweet("Heading to NeurIPS next week")),
    ("mentions_ml_venue", AI, tweet("New preprint on arXiv about sparse attention")),
    ("mentions_ml_venue", ABSTAIN, tweet("Tore my ACL playing football")),
    ("uses_ml_jargon", AI, tweet("The loss curve went down after fixing the learning rate warmup")),
    ("uses_ml_jargon", AI, tweet("Spent all day labelling training data. The model still overfits.")),
    ("uses_ml_jargon", ABSTAIN, tweet("Update on the 112th epoch: 3 blocks minted")),
    ("uses_ml_jargon", ABSTAIN, tweet("a few shots of tequila and fine-tuning the playlist")),
    ("mentions_ai_in_other_language", AI, tweet("La inteligencia artificial va a cambiar la medicina", lang="es")),
    ("mentions_ai_in_other_language", AI, tweet("機械学習の勉強を始めました！Pythonで線形回帰から", lang="ja")),
    ("mentions_ai_in_other_language", AI, tweet("मशीन लर्निंग सीखना शुरू किया, बहुत मज़ा आ रहा है", lang="hi")),
    ("mentions_ai_in_other_language", AI, tweet("Neuer Artikel über KI in der Industrie", lang="de")),
    ("mentions_ai_in_other_language", AI, tweet("Super conférence ce matin #IA", hashtags=["IA"], lang="fr")),
    ("mentions_ai_in_other_language", ABSTAIN, tweet("#IA caucus turnout is high", hashtags=["IA"], lang="en")),
    ("mentions_ai_in_other_language", ABSTAIN, tweet("#IA caucus turnout is high", hashtags=["IA"], lang=None)),
    ("links_to_ml_site", AI, tweet("worth a read", urls=[ARXIV])),
    ("links_to_ml_site", AI, tweet("worth a read", urls=["https://export.arxiv.org/abs/2401.00001"])),
    ("links_to_ml_site", AI, tweet("worth a read", urls=["https://medium.com/towards-data-science/a-gentle-intro"])),
    ("links_to_ml_site", ABSTAIN, tweet("worth a read", urls=["https://medium.com/@chef/pasta"])),
    ("links_to_ml_site", ABSTAIN, tweet("worth a read", urls=["https://notarxiv.org/abs/1"])),
    ("links_to_ml_site", ABSTAIN, tweet("worth a read", urls=["http://[broken"])),
    ("links_to_ml_code", AI, tweet("code is up", urls=["https://github.com/karpathy/nanoGPT"])),
    ("links_to_ml_code", AI, tweet("code is up", urls=["https://gitlab.com/someone/tiny-llm"])),
    ("links_to_ml_code", ABSTAIN, tweet("code is up", urls=["https://github.com/rust-lang/rust"])),
    ("links_to_ml_code", ABSTAIN, tweet("code is up", urls=["https://github.com/someone/learning-rust"])),
    ("not_data_science", NOT_AI, tweet("I ran out of mobile data again")),
    ("not_data_science", ABSTAIN, tweet("Data science is mostly cleaning data")),
    ("not_data_science", ABSTAIN, tweet("Collecting data for my ai side project")),
    ("not_data_science", ABSTAIN, tweet("Analysis of the data in the paper", urls=[ARXIV])),
    ("not_neural_network", NOT_AI, tweet("Grateful for my support network")),
    ("not_neural_network", ABSTAIN, tweet("Neural networks are wild")),
    ("not_big_data", NOT_AI, tweet("Big day tomorrow, wish me luck")),
    ("not_big_data", ABSTAIN, tweet("Big data pipelines on Apache Spark")),
    ("not_nlp", NOT_AI, tweet("Sign language classes start Monday")),
    ("not_nlp", ABSTAIN, tweet("Natural language processing with spaCy")),
    ("not_ai", NOT_AI, tweet("The intelligence community inspector general was fired")),
    ("not_ai", ABSTAIN, tweet("Artificial intelligence will change medicine")),
    ("not_ai", ABSTAIN, tweet("A lab scientist at @DeepMind on intelligence")),
    ("not_cv", NOT_AI, tweet("Bought a new computer today")),
    ("not_cv", ABSTAIN, tweet("Computer vision for satellite imagery")),
    ("is_not_ai_tweet", NOT_AI, tweet("Start your own business this year")),
    ("is_not_ai_tweet", ABSTAIN, tweet("Our business runs on machine learning")),
    ("is_not_ai_tweet", ABSTAIN, tweet("deep dive", hashtags=["DeepLearning"])),
    ("is_everyday_topic", NOT_AI, tweet("What a goal! Arsenal up 2-0 at half time")),
    ("is_everyday_topic", NOT_AI, tweet("Storm warning for Lagos tonight, stay safe")),
    ("is_everyday_topic", ABSTAIN, tweet("Using deep learning to predict football results")),
    ("is_everyday_topic", ABSTAIN, tweet("Pizza recommendations from ChatGPT")),
    ("field_word_in_an_everyday_phrase", NOT_AI, tweet("the washing machine again 😩")),
    ("field_word_in_an_everyday_phrase", NOT_AI, tweet("my love language is snacks")),
    ("field_word_in_an_everyday_phrase", NOT_AI, tweet("deep breaths before the exam")),
    ("field_word_in_an_everyday_phrase", NOT_AI, tweet("potty training day 3, send coffee")),
    ("field_word_in_an_everyday_phrase", NOT_AI, tweet("Se me acabaron los datos móviles otra vez", lang="es")),
    ("field_word_in_an_everyday_phrase", ABSTAIN, tweet("my role model is every data scientist who ships")),
    ("field_word_in_an_everyday_phrase", ABSTAIN, tweet("a vending machine that runs a neural network")),
    ("field_word_in_an_everyday_phrase", ABSTAIN, tweet("natural language processing in one thread")),
    ("ai_is_a_name", NOT_AI, tweet("Just saw the Ai Weiwei exhibition. Stunning and unsettling.")),
    ("ai_is_a_name", NOT_AI, tweet("Ai from Oshi no Ko deserved better")),
    ("ai_is_a_name", NOT_AI, tweet("AI FROM OSHI NO KO DESERVED BETTER")),
    ("ai_is_a_name", NOT_AI, tweet("Allen Iverson AI3 The Answer, greatest crossover of all time")),
    ("ai_is_a_name", NOT_AI, tweet("AI Pacino in that film is still the best thing ever")),
    ("ai_is_a_name", NOT_AI, tweet("AI Nassr won 2-1 tonight, what a strike")),
    ("ai_is_a_name", ABSTAIN, tweet("Ai Weiwei on machine learning and art")),
    ("ai_is_a_name", ABSTAIN, tweet("Ai art is everywhere now")),
    ("ai_in_a_video_game", NOT_AI, tweet("the enemy AI in this game is brutal")),
    ("ai_in_a_video_game", NOT_AI, tweet("Patch notes: improved companion AI pathfinding #gaming")),
    ("ai_in_a_video_game", NOT_AI, tweet("the ai in this gameplay is so dumb")),
    ("ai_in_a_video_game", NOT_AI, tweet("Gran Turismo 7 AI drivers brake-check you on every corner")),
    ("ai_in_a_video_game", NOT_AI, tweet("the AI in FIFA cheats, no way it knew where I was")),
    ("ai_in_a_video_game", ABSTAIN, tweet("DeepMind's AI beats pros, amazing gameplay")),
    ("ai_in_a_video_game", ABSTAIN, tweet("AI is a game changer for small business")),
    ("ml_is_not_machine_learning", NOT_AI, tweet("Pancake recipe: 2 eggs, 250 ml of milk")),
    ("ml_is_not_machine_learning", NOT_AI, tweet("Mezcla 500 ml de agua con el azúcar", lang="es")),
    ("ml_is_not_machine_learning", NOT_AI, tweet("ADD 200 ML OF MILK AND STIR")),
    ("ml_is_not_machine_learning", NOT_AI, tweet("Hand sanitizer for sale, 500ml big bottle")),
    ("ml_is_not_machine_learning", NOT_AI, tweet("main ML yuk, push rank malam ini", lang="in")),
    ("ml_is_not_machine_learning", NOT_AI, tweet("who plays ML tonight? Mobile Legends squad")),
    ("ml_is_not_machine_learning", ABSTAIN, tweet("ML engineers drink 500 ml of coffee a day")),
    ("ml_is_not_machine_learning", ABSTAIN, tweet("We are hiring an ML engineer")),
    ("ml_is_not_machine_learning", ABSTAIN, tweet("Belajar ML dan deep learning", lang="in")),
    # Two kinds of model-building words together; one alone never votes.
    ("talks_about_building_models", AI, tweet("my model has been training since friday and it's still not done")),
    ("talks_about_building_models", AI, tweet("batch size 2 because the GPU only has 6GB, pls send compute")),
    ("talks_about_building_models", AI, tweet("relabelled half the dataset, retrained, and accuracy went up 4 points")),
    ("talks_about_building_models", AI, tweet("reviewers want ablations on two more datasets before the camera-ready")),
    ("talks_about_building_models", AI, tweet("entrenamiento del modelo terminado, ahora a esperar", lang="es")),
    ("talks_about_building_models", AI, tweet("モデルの学習がやっと終わった", lang="ja")),
    ("talks_about_building_models", ABSTAIN, tweet("she's a model and she's been training for the marathon all year")),
    ("talks_about_building_models", ABSTAIN, tweet("new model train set for the kids, they love the little station")),
    ("talks_about_building_models", ABSTAIN, tweet("the GPU is overheating again while I game")),
    ("talks_about_building_models", ABSTAIN, tweet("spent the day training the new puppy")),
    ("talks_about_building_models", ABSTAIN, tweet("ranked grind: my GPU can't hold 144 fps and the benchmark lied")),
    # "AI" or "ML" in another sense, from the words around it.
    ("ai_means_something_else", NOT_AI, tweet("Booked AI for the heifers on Tuesday, fingers crossed for the calving")),
    ("ai_means_something_else", NOT_AI, tweet("AI's crossover on Tyronn Lue still lives rent free in my head")),
    ("ai_means_something_else", NOT_AI, tweet("Amnesty report out today: AI documents torture in three prisons")),
    ("ai_means_something_else", NOT_AI, tweet("ML twitter arguing about the Soviet Union again, comrades please")),
    ("ai_means_something_else", ABSTAIN, tweet("AI tool predicts calving dates from cattle sensor data with machine learning")),
    ("ai_means_something_else", NOT_AI, tweet("client sent the logo as an AI file and I don't have Illustrator")),
    ("ai_means_something_else", NOT_AI, tweet("ordered semen straws for AI, the herd needs better genetics")),
    ("ai_means_something_else", ABSTAIN, tweet("the Sixers won and I'm happy")),
    # Positive vocabulary that only the field uses, in other languages and hashtags written in camel case.
    ("mentions_ai", AI, tweet("#NoAIArt in my mentions again")),
    ("mentions_ai", AI, tweet("生成AIで作った画像はコンテストに出せない", lang="ja")),
    ("mentions_ai_in_other_language", AI, tweet("Sztuczna inteligencja zmieni szkoły?", lang="pl")),
    ("mentions_ai_in_other_language", AI, tweet("Học máy có khó không mọi người?", lang="vi")),
    ("uses_ml_jargon", AI, tweet("CUDA out of memory at 3am, again")),
    ("uses_ml_jargon", AI, tweet("the val loss went up while the train loss kept falling")),
    ("mentions_ai_lab_model_or_researcher", AI, tweet("GPT-4o wrote my cover letter")),
    ("mentions_ai_lab_model_or_researcher", ABSTAIN, tweet("converted the disk from MBR to GPT before installing Linux")),
    ("mentions_ai_lab_model_or_researcher", ABSTAIN, tweet("a Gemini and a Llama walk into a bar, says Claude from accounting")),
    ("ai_in_a_video_game", NOT_AI, tweet("la IA del modo carrera ficha puros veteranos", lang="es")),
    ("ai_in_a_video_game", NOT_AI, tweet("Hall of Fame difficulty AI in NBA 2K cooked me")),
]


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["text", "urls", "hashtags", "lang", "user_screen_name", "is_retweet"])


def label(lfs, df: pd.DataFrame) -> np.ndarray:
    return PandasLFApplier(lfs).apply(df, progress_bar=False)


@pytest.fixture(scope="module")
def lfs():
    return make_lfs()


@pytest.fixture(scope="module")
def example_votes(lfs) -> dict[tuple[int, str], int]:
    L = label(lfs, frame([row for _, _, row in EXAMPLES]))
    names = lf_names(lfs)
    return {(i, name): int(L[i, j]) for i in range(len(EXAMPLES)) for j, name in enumerate(names)}


@pytest.mark.parametrize(
    "index", range(len(EXAMPLES)),
    ids=[f"{name}-{'abstains' if vote == ABSTAIN else 'votes'}-{row['text'][:40]}" for name, vote, row in EXAMPLES],
)
def test_labelling_function_on_hand_written_tweet(example_votes, index):
    name, expected, row = EXAMPLES[index]
    assert example_votes[(index, name)] == expected, row


def test_every_function_is_exercised_both_ways(lfs):
    names = lf_names(lfs)
    votes = {(name, expected == ABSTAIN) for name, expected, _ in EXAMPLES}
    for name in names:
        assert (name, False) in votes, f"no example where {name} votes"
        assert (name, True) in votes, f"no example where {name} abstains"
    assert {name for name, _, _ in EXAMPLES} == set(names)


def test_names_are_unique_stable_and_cover_both_classes(lfs):
    names = lf_names(lfs)
    assert names == lf_names(make_lfs())
    assert len(set(names)) == len(names)
    assert 15 <= len(names) <= 30
    polarity = {name: expected for name, expected, _ in EXAMPLES if expected != ABSTAIN}
    assert set(polarity.values()) == {AI, NOT_AI}
    # The original project's functions are all here.
    for original in ("not_data_science", "not_neural_network", "not_big_data", "not_nlp", "not_ai", "not_cv",
                     "is_not_ai_tweet"):
        assert polarity[original] == NOT_AI


def test_lf_names_rejects_repeated_names(lfs):
    with pytest.raises(LabelingFunctionError, match="mentions_ai"):
        lf_names([lfs[0], lfs[1], lfs[0]])


def test_attribute_rows_vote_like_pandas_rows(lfs, example_votes):
    names = lf_names(lfs)
    for i, (_, _, row) in enumerate(EXAMPLES):
        x = SimpleNamespace(**row)
        assert [lf(x) for lf in lfs] == [example_votes[(i, name)] for name in names], row["text"]


@pytest.fixture(scope="module")
def realistic_frame(fixture_tweets_path) -> pd.DataFrame:
    """Synthetic tweets and the real v1.1 fixture payloads, parsed as the pipeline parses them."""
    payloads = [t.payload for t in SyntheticTweets(seed=5).generate(400)]
    payloads += fixture_tweets_path.read_bytes().splitlines()
    df = pd.DataFrame([parse_tweet(p).to_row() for p in payloads]).drop(columns=["raw", "id", "created_at"])
    # Missing values as a database or Spark hands them over.
    df.loc[df.index[::7], "urls"] = None
    df.loc[df.index[3::11], "hashtags"] = None
    df.loc[df.index[5::13], "lang"] = None
    return df


def test_numpy_array_rows_vote_like_list_rows(lfs, realistic_frame):
    lists = realistic_frame
    # Arrow is what mapInPandas goes through: list columns come back as numpy arrays.
    arrays = pa.Table.from_pandas(lists, preserve_index=False).to_pandas()
    assert isinstance(arrays["urls"].dropna().iloc[0], np.ndarray)
    assert isinstance(lists["urls"].dropna().iloc[0], list)
    L_lists = label(lfs, lists)
    L_arrays = label(lfs, arrays)
    assert (L_lists != ABSTAIN).sum() > len(lists)  # plenty of votes, not an all-abstain matrix
    np.testing.assert_array_equal(L_lists, L_arrays)


def test_functions_survive_cloudpickle_with_the_same_votes(lfs, realistic_frame):
    before = label(lfs, realistic_frame)  # fills the caches first: they must not travel
    shipped = cloudpickle.loads(cloudpickle.dumps(lfs))
    assert lf_names(shipped) == lf_names(lfs)
    np.testing.assert_array_equal(label(shipped, realistic_frame), before)
    # One pickle for all functions keeps their shared lists shared.
    assert shipped[0]._resources["facts"] is shipped[-1]._resources["facts"]


def test_precision_against_the_synthetic_streams_truth(lfs):
    """Bounds from measuring 10 seeds of 2,000 tweets: every positive function was right on at least
    99.5% of its votes except links_to_ml_site (95.3% worst case: the generator's near-duplicates
    append a blog link, sometimes on huggingface.co or towardsdatascience.com, to a sports or
    recipe tweet). The not_* functions never fire on the synthetic mix (its ordinary tweets avoid
    "data", "big", "network"...); the hand-written examples cover them."""
    tweets = list(SyntheticTweets(seed=2024).generate(2000))
    df = pd.DataFrame([parse_tweet(t.payload).to_row() for t in tweets]).drop(columns=["raw"])
    truth = np.array([int(t.is_ai) for t in tweets])
    L = label(lfs, df)
    names = lf_names(lfs)
    positives = [name for name, vote, _ in EXAMPLES if vote == AI]
    firing_negatives = ["is_not_ai_tweet", "is_everyday_topic", "ai_is_a_name", "ai_in_a_video_game",
                        "ml_is_not_machine_learning"]
    for name in dict.fromkeys(positives + firing_negatives):
        column = L[:, names.index(name)]
        voted = column != ABSTAIN
        assert voted.sum() >= 3, f"{name} voted on only {voted.sum()} of 2000 tweets"
        precision = (column[voted] == truth[voted]).mean()
        bound = 0.90 if name == "links_to_ml_site" else 0.97
        assert precision >= bound, f"{name}: precision {precision:.3f} < {bound} over {voted.sum()} votes"
    for name in positives:
        assert (L[:, names.index(name)] != ABSTAIN).sum() >= 15, name
    any_ai = (L == AI).any(axis=1)
    any_not_ai = (L == NOT_AI).any(axis=1)
    assert any_ai[truth == 1].mean() >= 0.95  # measured 99.6-99.9%
    assert any_not_ai[truth == 0].mean() >= 0.6  # measured 70-72%


def test_fast_keyword_lookup_finds_what_keyword_matcher_finds(realistic_frame):
    """The set lookup in front of each list (functions._Keywords) only saves time: on every text it
    must agree with a plain KeywordMatcher over the same list."""
    tricky = [
        "LLMs and #Machine_Learning", "GPT-4 vs GPT's", "A.I. is here", "scikit_learn 1.5", "#DeepLearnings",
        "機械学習の勉強", "深度学习很有趣", "maschinelles-Lernen", "NEURAL NETWORKS", "data_science", "#BigData!",
        "Weights & Biases", "train/test split", "the ML-engineer's job", "#100DaysOfMLCode day 3", "ＡＩ",
        "straße", "ſcience", "KI", "#ki", "ai", "Ai", "AIs", "#NLProc", "x.ai", "ai.", "(AI)", "#AI_art",
        "#100_Days_Of_ML_Code",
    ]
    texts = tricky + [t for t in realistic_frame["text"] if isinstance(t, str)]
    folder = REPO_ROOT / "data" / "labeling"
    lexicon = functions._Lexicon(folder)
    checked = 0
    for name in functions._TERM_LISTS + functions._WORD_LISTS + ("ai_hints", "other_language_acronyms"):
        plain = KeywordMatcher(load_ai_keywords(folder / f"{name}.txt"))
        fast = lexicon.terms.get(name) or lexicon.words.get(name)
        if fast is None:
            fast = lexicon.hints if name == "ai_hints" else lexicon.foreign_acronyms
        for text in texts:
            facts = functions._TextFacts(text, lexicon)
            # Compare on the text the rules see: traps and mentions taken out.
            assert fast.found_in(facts) == plain.matches(facts.clean), (name, text)
            checked += plain.matches(facts.clean)
    assert checked > 500  # the texts do hit the lists


# ---------------------------------------------------------------- bad input


@pytest.fixture()
def keyword_copy(tmp_path) -> Path:
    folder = tmp_path / "labeling"
    shutil.copytree(REPO_ROOT / "data" / "labeling", folder)
    return folder


def test_every_keyword_list_ships_with_the_repo():
    for name in KEYWORD_LISTS:
        assert (REPO_ROOT / "data" / "labeling" / f"{name}.txt").is_file(), name


def test_missing_keyword_list_is_named(keyword_copy):
    (keyword_copy / "ml_sites.txt").unlink()
    with pytest.raises(LabelingFunctionError, match=r"ml_sites\.txt is missing"):
        make_lfs(keyword_copy)


def test_empty_keyword_list_is_named(keyword_copy):
    (keyword_copy / "not_ai.txt").write_text("# only a comment\n\n#\n", encoding="utf-8")
    with pytest.raises(LabelingFunctionError, match=r"not_ai\.txt is empty"):
        make_lfs(keyword_copy)


def test_missing_keyword_folder_is_named(tmp_path):
    with pytest.raises(LabelingFunctionError, match="nowhere"):
        make_lfs(tmp_path / "nowhere")


def test_edited_list_changes_the_votes(keyword_copy):
    with (keyword_copy / "ai_terms.txt").open("a", encoding="utf-8") as f:
        f.write("thinking machines\n")
    text = frame([tweet("Thinking machines are here")])
    names = lf_names(make_lfs())
    assert label(make_lfs(), text)[0, names.index("mentions_ai")] == ABSTAIN
    assert label(make_lfs(keyword_copy), text)[0, names.index("mentions_ai")] == AI


def test_ssp_data_dir_is_honoured_and_relative_paths_start_at_the_repo(keyword_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("SSP_DATA_DIR", str(tmp_path))
    assert default_keyword_dir() == keyword_copy
    (keyword_copy / "ai_names.txt").unlink()
    with pytest.raises(LabelingFunctionError, match=str(keyword_copy / "ai_names.txt")):
        make_lfs()
    monkeypatch.setenv("SSP_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_keyword_dir() == REPO_ROOT / "data" / "labeling"
    monkeypatch.chdir(tmp_path)
    assert lf_names(make_lfs("data/labeling")) == lf_names(make_lfs())


def test_row_without_a_field_is_named(lfs):
    by_name = dict(zip(lf_names(lfs), lfs, strict=True))
    with pytest.raises(LabelingFunctionError, match="'urls'"):
        by_name["links_to_ml_site"](SimpleNamespace(text="hello", hashtags=[], lang="en"))
    df = frame([tweet("hello")]).drop(columns=["hashtags"])
    with pytest.raises(LabelingFunctionError, match="'hashtags'"):
        label(lfs, df)


def test_field_of_the_wrong_type_is_named(lfs):
    with pytest.raises(LabelingFunctionError, match="'urls' must be a list of strings"):
        label(lfs, frame([{**tweet("see link"), "urls": "https://arxiv.org/abs/1"}]))
    with pytest.raises(LabelingFunctionError, match="'text' must be a string"):
        label(lfs, frame([{**tweet("x"), "text": 42}]))
    with pytest.raises(LabelingFunctionError, match="'hashtags' must hold strings"):
        label(lfs, frame([{**tweet("x"), "hashtags": ["ok", 7]}]))


def test_missing_values_abstain_instead_of_failing(lfs):
    rows = [{**tweet("x"), "text": None, "urls": None, "hashtags": None, "lang": None},
            {**tweet("x"), "text": float("nan"), "urls": float("nan"), "hashtags": float("nan"),
             "lang": float("nan")}]
    L = label(lfs, frame(rows))
    assert (L == ABSTAIN).all()
