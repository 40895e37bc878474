"""A seeded stream of realistic tweets, each labelled AI/ML/data science or not.

The stream stands in for the X API when there is no account, and feeds tests and
benchmarks, so it is deterministic: the same seed gives byte-identical payloads in any
process (timestamps come from a fixed start plus seeded gaps, never the wall clock;
nothing depends on ``hash()``), and :meth:`SyntheticTweets.generate` starts from the
beginning of the seed's stream on every call.

What the mix holds, roughly (see the ``*_share`` arguments):

* about a third AI/ML/data-science tweets built from templates and vocabulary (papers
  with arXiv links, library releases with GitHub links, hashtags, emoji), a few of them
  without any obvious keyword; the rest ordinary tweets (sports, food, politics,
  weather, music, shopping, travel...);
* traps labelled not-AI: "Ai Weiwei", "Ai" the anime character, a game's enemy AI,
  "200 ml of milk" (also in Spanish and French), Allen Iverson's "AI3", a maid cafe;
* non-English tweets (es, fr, de, ja, hi, pt, it, and ``und`` for emoji-only) with
  the right ``lang``;
* v1.1 retweets (``RT @user: `` text cut to 140 characters, the original in
  ``retweeted_status``) and extended tweets (``truncated: true`` with the full text in
  ``extended_tweet``);
* exact duplicates (same text, new id) and near duplicates (case, whitespace or link
  changes) of recent tweets;
* t.co links in the text with the real URL in the entities, hashtags and mentions with
  their indices;
* about ``v2_share`` of payloads in X API v2 shape, with ``note_tweet`` for long texts
  and retweets through ``referenced_tweets`` and ``includes.tweets``.

Ids are snowflake-like: milliseconds since the X epoch, a seed-derived worker number
and the stream index, so top-level ids strictly increase and never repeat; retweeted
originals carry a worker bit of their own and cannot collide with them.
"""

from __future__ import annotations

import random
import re
import string
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = ["DEFAULT_START", "SyntheticTweet", "SyntheticTweets", "synthetic_payloads"]

DEFAULT_START = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
_X_EPOCH_MS = 1288834974657
_ORIGINAL_WORKER_BIT = 0x200
_V1_MAX = 140
_V2_MAX = 280
_TCO_ALPHABET = string.ascii_letters + string.digits
# Pairs of link characters indexed by 12 random bits: five lookups make a 10-character
# t.co path several times faster than drawing each character.
_TCO_PAIRS = tuple(
    _TCO_ALPHABET[i % 62] + _TCO_ALPHABET[(i // 62) % 62] for i in range(4096)
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The leading lookahead lets the engine skip most positions without trying each branch.
_ENTITY = re.compile(
    r"(?=[h#@])(?:(?P<url>https://t\.co/[A-Za-z0-9]+)"
    r"|(?<![\w&#])#(?P<tag>\w+)|(?<![\w@])@(?P<user>\w{1,15}))"
)
_TCO = re.compile(r"(https://t\.co/[A-Za-z0-9]+)")
_SOURCES = (
    '<a href="http://twitter.com/download/iphone" rel="nofollow">Twitter for iPhone</a>',
    '<a href="http://twitter.com/download/android" rel="nofollow">Twitter for Android</a>',
    '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
    '<a href="https://about.twitter.com/products/tweetdeck" rel="nofollow">TweetDeck</a>',
)


@dataclass(frozen=True, slots=True)
class SyntheticTweet:
    """One generated payload with its ground truth.

    ``traits`` names what the tweet exercises: ``ai``, ``implicit_ai`` (AI without an
    obvious keyword), ``trap`` (looks like AI, is not), ``non_english``, ``retweet``,
    ``extended`` (v1.1 truncated + extended_tweet), ``note_tweet`` (long v2 text),
    ``duplicate``, ``near_duplicate``, and ``v1`` or ``v2`` for the payload shape.
    """

    payload: dict[str, Any]
    is_ai: bool
    tweet_id: int
    traits: frozenset[str] = frozenset()


class _Template(NamedTuple):
    text: str
    fields: tuple[str, ...]
    is_ai: bool
    traits: frozenset[str]
    lang: str


def _templates(
    texts: tuple[str, ...], is_ai: bool, traits: tuple[str, ...] = (), lang: str = "en"
) -> tuple[_Template, ...]:
    parser = string.Formatter()
    return tuple(
        _Template(
            text,
            tuple(dict.fromkeys(name for _, name, _, _ in parser.parse(text) if name)),
            is_ai,
            frozenset(traits),
            lang,
        )
        for text in texts
    )


_VOCAB: dict[str, tuple[str, ...]] = {
    "lib": ("PyTorch", "TensorFlow", "scikit-learn", "Keras", "JAX", "XGBoost", "LightGBM",
            "spaCy", "Hugging Face Transformers", "LangChain", "MLflow", "Ray", "Polars",
            "pandas", "ONNX Runtime", "DeepSpeed", "vLLM"),
    "model": ("GPT-4", "Llama 3", "Mistral 7B", "BERT", "ResNet-50", "ViT-B/16", "Whisper",
              "T5", "CLIP", "Stable Diffusion XL", "Phi-3", "Gemma 2B"),
    "task": ("sentiment analysis", "image segmentation", "time-series forecasting",
             "fraud detection", "recommendation", "object detection", "speech recognition",
             "text classification", "anomaly detection", "churn prediction",
             "named entity recognition", "machine translation"),
    "topic": ("machine learning", "deep learning", "data science", "reinforcement learning",
              "computer vision", "NLP", "generative AI", "LLM fine-tuning", "MLOps",
              "neural networks", "transformer models", "diffusion models"),
    "aitag": ("MachineLearning", "DeepLearning", "AI", "DataScience", "NLP", "ComputerVision",
              "LLM", "GenAI", "MLOps", "ArtificialIntelligence", "PyTorch", "BigData"),
    "paper_adj": ("Scaling", "Efficient", "Robust", "Self-Supervised", "Contrastive",
                  "Sparse", "Causal", "Multimodal", "Federated", "Few-Shot"),
    "paper_noun": ("Transformers", "Diffusion Models", "Graph Neural Networks",
                   "Language Models", "Vision Transformers", "Mixture-of-Experts",
                   "Retrieval-Augmented Generation", "State Space Models"),
    "role": ("ML engineer", "data scientist", "research scientist", "MLOps engineer",
             "NLP engineer", "computer vision engineer"),
    "conf": ("NeurIPS", "ICML", "PyData London", "ICLR", "CVPR", "KDD", "the local ML meetup"),
    "company": ("Meta", "Mistral AI", "Google DeepMind", "Hugging Face", "Stability AI",
                "a small startup"),
    "job": ("radiologist", "translator", "copywriter", "software engineer", "paralegal"),
    "cvtask": ("small object detection", "medical imaging", "satellite imagery", "OCR"),
    "rlgoal": ("walk", "play Atari Breakout", "balance a pole", "drive a toy car"),
    "kaggle": ("Titanic", "House Prices", "LLM Science Exam", "Store Sales"),
    "emoji": ("🚀", "🤖", "🧠", "📈", "🔥", "✨", "👀", "🙌", "💡", "📊", "😅", "🎉"),
    "food_emoji": ("🍝", "🍕", "🌮", "🍜", "🥗", "🍰", "🍔"),
    "player": ("Mbappé", "Haaland", "Salah", "Bellingham", "Saka", "Messi", "Kane"),
    "team": ("Arsenal", "Real Madrid", "Liverpool", "Bayern", "PSG", "the Lakers",
             "the Celtics", "Man City", "Barça"),
    "sporttag": ("football", "PremierLeague", "NBA", "UCL", "LaLiga", "matchday"),
    "score": ("1-0", "2-1", "3-0", "2-2", "1-1", "4-2"),
    "dish": ("lasagna", "ramen", "tacos", "banana bread", "pad thai", "shakshuka",
             "carbonara", "chili"),
    "city": ("London", "Madrid", "Chicago", "Lagos", "Mumbai", "Toronto", "Sydney",
             "Berlin", "Austin"),
    "election": ("mayoral", "local", "general", "primary"),
    "poltag": ("Election2024", "vote", "politics"),
    "issue": ("housing", "transport", "healthcare", "schools", "climate"),
    "artist": ("Taylor Swift", "Kendrick Lamar", "Dua Lipa", "Bad Bunny", "Adele",
               "Arctic Monkeys", "Burna Boy"),
    "item": ("running shoes", "air fryer", "winter jacket", "headphones", "coffee grinder",
             "desk lamp"),
    "airport": ("Heathrow", "JFK", "O'Hare", "Schiphol", "Dubai airport"),
    "pet": ("dog", "cat", "parrot", "golden retriever"),
    "show": ("The Bear", "Severance", "Succession", "Bridgerton", "Shōgun"),
    "street": ("Main Street", "Oxford Street", "5th Avenue", "the high street"),
    "month": ("March", "October", "November", "December"),
    "museum": ("the Royal Academy", "the Hirshhorn", "Tate Modern", "the Gropius Bau"),
    "anime": ("Oshi no Ko", "Ai no Kusabi", "Love Live"),
    "mention": ("NASA", "nytimes", "espn", "BBCSport", "karpathy", "ylecun", "huggingface",
                "PyTorch", "kaggle", "github"),
}

_KNOWN_ACCOUNTS = {
    "NASA": 11348282, "nytimes": 807095, "espn": 2557521, "BBCSport": 265902729,
    "karpathy": 33836629, "ylecun": 48008938, "huggingface": 778764142412984320,
    "PyTorch": 776585502606721024, "kaggle": 80422885, "github": 13334762,
}

_AI = _templates((
    'New paper on arXiv: "{paper_adj} {paper_noun} for {task}" {arxiv} #{aitag} #{aitag2}',
    "Just shipped {lib} {version} {emoji} faster training and better {task}. "
    "Release notes: {github} #{aitag}",
    "Hot take: most {task} problems don't need deep learning. Gradient boosting plus "
    "good features wins. #{aitag}",
    "{model} vs {model2} on {task}: {model} wins by {pct}% in our benchmark {emoji} {blog}",
    "Day {day} of #100DaysOfMLCode: implemented backpropagation from scratch in numpy {emoji}",
    "Our team is hiring a {role} to work on {topic}. Remote friendly! {jobs} #{aitag} #hiring",
    "Anyone else find that {lib} eats all the GPU memory when fine-tuning {model}? 😩",
    "Great talk today on {topic} at {conf}. Slides: {blog} {emoji}",
    "Machine learning tip: check your train/test split for leakage before celebrating "
    "{pct}% accuracy. #{aitag}",
    "The neural network finally converged after {n} epochs {emoji} #{aitag}",
    "Thread 🧵 on how {topic} actually works, no hype: 1/",
    "Built a {task} demo with {lib} over the weekend: {github} #{aitag} #{aitag2}",
    "Data science is 80% cleaning data and 20% complaining about cleaning data. #{aitag}",
    'Reading "{paper_adj} {paper_noun}" and the ablations are really convincing {emoji} {arxiv}',
    "{company} just released an open LLM for {task}. Weights on Hugging Face: {hf}",
    "Is AI going to replace every {job}? Honest answer: it changes the job first. #{aitag}",
    "Computer vision folks: what's your go-to augmentation for {cvtask}? #{aitag}",
    "Reinforcement learning agent learned to {rlgoal} in {n} episodes {emoji} {blog}",
    "Teaching my students gradient descent with a hill and a blindfold. Works every time.",
    "@{mention} great thread on {topic}! Bookmarking this {emoji}",
    "Generative AI won't fix a broken data pipeline. #{aitag} #{aitag2}",
    "Free course on deep learning with {lib}, {n} hours of video: {blog} #{aitag}",
    "Kaggle update: top {pct}% in {kaggle} with a simple {lib} baseline #{aitag}",
    "prompt engineering is just writing clear instructions and I will die on this hill #{aitag}",
    "LLMs hallucinating citations again. Please check your references before submitting {emoji}",
    "Our {topic} reading group meets Thursday, this week: {paper_adj} {paper_noun} {arxiv}",
), True, ("ai",))

_IMPLICIT_AI = _templates((
    "Finally got the loss curve to go down after fixing the learning rate warmup {emoji}",
    "Spent all day labelling training data. My eyes hurt. The model still overfits.",
    "Hyperparameter sweep finished overnight: {n} runs, best validation accuracy {pct}%",
    "The attention maps show the classifier looking at the watermark, not the dog 🙃",
), True, ("ai", "implicit_ai"))

_TRAPS = _templates((
    "Just saw the Ai Weiwei exhibition at {museum}. Stunning and unsettling.",
    "Ai Weiwei's sunflower seeds installation still lives rent free in my head",
    "Ai from {anime} deserved better. That ending wrecked me 😭",
    "the enemy AI in this game is brutal, died {n} times on the first boss 💀",
    "Patch notes: improved companion AI pathfinding and fixed the inventory bug #gaming",
    "Pancake recipe: 2 eggs, 250 ml of milk, 125 g flour, pinch of salt 🥞",
    "Add 200 ml of milk and stir until smooth. Works for {dish} sauce too.",
    "Allen Iverson AI3 The Answer, greatest crossover of all time #NBA",
    "Throwback to AI3 stepping over Tyronn Lue 🔥 #NBA",
    "The maid cafe in Akihabara was so much fun, ten out of ten",
    "Transformers: Rise of the Beasts was better than I expected, Optimus Prime rules",
), False, ("trap",))

_ORDINARY = _templates((
    "What a goal from {player}! {team} up {score} at half time ⚽ #{sporttag}",
    "{team} fans, how are we feeling after that loss? 😬 #{sporttag}",
    "Made {dish} tonight and honestly it slaps {food_emoji} #foodie",
    "Best {dish} in {city}? Taking recommendations",
    "New recipe on the blog: {dish} in 30 minutes {link_food}",
    "Turnout for the {election} election looks high in {city} this morning. #{poltag}",
    "The debate last night was a mess. Nobody answered a single question about {issue}.",
    "Council votes on the new {issue} budget tonight {link_news}",
    "It's {temp}°C in {city} and I'm melting ☀️ #weather",
    "Storm warning for {city} tonight, stay safe everyone ⛈️",
    "Rain again in {city}. Of course. 🌧️",
    "{artist}'s new album has been on repeat all week 🎧 {link_music}",
    "Concert tickets for {artist} sold out in {n} minutes, I'm devastated",
    "Found the perfect {item} on sale, 40% off! {link_shop} #deal",
    "Black Friday haul: {item}, a new {item2} and way too many socks 🛍️",
    "Delayed at {airport} for {n} hours. Travel is so glamorous ✈️",
    "Monday meeting could have been an email. #mondaymotivation",
    "My {pet} just stole my sandwich off the counter 🐶",
    "Finished {show} in one weekend, no regrets #bingewatching",
    "Good morning {city}! ☕ Coffee first, then everything else.",
    "Road closures on {street} this weekend for the marathon {link_news}",
    "Anyone know a good plumber in {city}? Asking for a desperate friend",
    "Stock market up {pct}% today and my portfolio is still down somehow 📉",
    "Happy birthday to my best friend @{mention}! 🎂",
    "Can't believe it's already {month}. Where did the year go?",
    "Training for my first half marathon, {n} km today 🏃",
    "The new phone update drained my battery in {n} hours. Great job.",
    "{team} paying that fee for {player}? Ridiculous. #{sporttag}",
    "Watching the {team} game with my dad, he is yelling at the TV again",
    "Farmers market haul: tomatoes, peaches and fresh bread {food_emoji}",
), False)

_NON_ENGLISH = (
    *_templates(("¡Qué golazo de {player}! {team} gana {score} ⚽",
                 "Hoy hace {temp} grados en Madrid, no se puede salir de casa ☀️",
                 "Mezcla 500 ml de agua con el azúcar y deja reposar 10 minutos"),
                False, ("non_english",), "es"),
    *_templates(("La inteligencia artificial va a cambiar la medicina, pero no mañana. #IA",
                 "Curso gratis de aprendizaje automático con Python: {blog}"),
                True, ("ai", "non_english"), "es"),
    *_templates(("Il pleut encore à Paris... vivement l'été 🌧️",
                 "Recette du jour : tarte aux pommes, simple et délicieuse 🍎",
                 "Ajoutez 20 ml de crème et laissez mijoter cinq minutes"),
                False, ("non_english",), "fr"),
    *_templates(("Super conférence sur l'intelligence artificielle générative ce matin #IA",),
                True, ("ai", "non_english"), "fr"),
    *_templates(("Das Spiel gestern war der Wahnsinn! {team} 🔥",
                 "Heute sind es in Berlin {temp} Grad, endlich Sommer ☀️"),
                False, ("non_english",), "de"),
    *_templates(("Neuer Artikel über maschinelles Lernen in der Industrie: {blog}",),
                True, ("ai", "non_english"), "de"),
    *_templates(("今日は雨で寒いです。温かいラーメンが食べたい 🍜",
                 "新しいアルバムが最高すぎる 🎧"),
                False, ("non_english",), "ja"),
    *_templates(("機械学習の勉強を始めました！Pythonで線形回帰から 📚 #機械学習",),
                True, ("ai", "non_english"), "ja"),
    *_templates(("आज का मैच शानदार था! 🏏 #cricket",), False, ("non_english",), "hi"),
    *_templates(("मशीन लर्निंग सीखना शुरू किया, बहुत मज़ा आ रहा है 🤖",),
                True, ("ai", "implicit_ai", "non_english"), "hi"),
    *_templates(("Que jogo incrível ontem! {team} 🔥 #futebol",),
                False, ("non_english",), "pt"),
    *_templates(("Inteligência artificial na saúde: oportunidades e riscos {blog}",),
                True, ("ai", "implicit_ai", "non_english"), "pt"),
    *_templates(("Pizza margherita fatta in casa, niente di meglio 🍕",),
                False, ("non_english",), "it"),
    *_templates(("😂😂😂", "🔥🔥🔥 {link_music}"), False, ("non_english",), "und"),
)

_AI_FILLERS = (
    "We benchmark on three public datasets and see consistent gains over strong baselines.",
    "The trick is a better data mix, not a bigger model.",
    "Code, weights and a Colab notebook are all open source.",
    "Training took two days on a single GPU, which still surprises me.",
    "Happy to answer questions in the replies.",
    "Huge thanks to everyone who reviewed the early drafts.",
    "Evaluation numbers are in the appendix, including the failure cases.",
    "If you only read one section, read the one on data leakage.",
)
_ORDINARY_FILLERS = (
    "Honestly the best part of my week so far.",
    "Not sure how I feel about it yet, will report back tomorrow.",
    "My friends think I'm overreacting but I stand by it.",
    "Anyway, back to work now, this coffee is not going to drink itself.",
    "Tell me I'm wrong in the replies.",
    "Sending good vibes to everyone dealing with the same thing today.",
    "Photos don't do it justice, you really have to be there.",
)
_FILLER_TAGS = ("#DeepLearning #NLP", "#MachineLearning", "#DataScience #AI", "#LLM")

_FIRST = ("alex", "sam", "maria", "li", "priya", "tom", "fatima", "jon", "yuki", "omar",
          "ana", "kofi", "lena", "raj", "chloe", "diego", "nina", "ben", "aisha", "max")
_LAST = ("codes", "dev", "ml", "data", "smith", "garcia", "chen", "fan", "writes", "cooks",
         "runs", "travels", "_", "x", "official", "hq", "lab", "tv")
_NAMES = ("Alex", "Sam", "María", "Li", "Priya", "Tom", "Fatima", "Jon", "Yuki", "Omar",
          "Ana", "Kofi", "Lena", "Raj", "Chloé", "Diego", "Nina", "Ben", "Aisha", "Max")
_LOCATIONS = (None, "London, England", "San Francisco, CA", "Madrid", "Bengaluru, India",
              "Berlin", "Tokyo", "Lagos, Nigeria", "Toronto", "Earth")
_GITHUB_ORGS = ("pytorch", "huggingface", "google-research", "facebookresearch", "microsoft",
                "karpathy", "ssp-lab", "mlfoundations", "openai")
_GITHUB_REPOS = ("transformers", "nanoGPT", "diffusers", "tiny-llm", "fast-tabular",
                 "vision-bench", "rl-playground", "text-clf", "ml-recipes")
_BLOGS = ("https://medium.com/@{u}/", "https://towardsdatascience.com/", "https://{u}.github.io/",
          "https://www.youtube.com/watch?v=", "https://huggingface.co/blog/")
_SLUGS = ("a-gentle-introduction", "lessons-learned", "from-scratch", "benchmark-results",
          "what-we-got-wrong", "part-2", "deep-dive", "notes")
_NEWS = ("https://www.bbc.co.uk/news/articles/", "https://www.nytimes.com/2024/03/",
         "https://www.theguardian.com/uk-news/", "https://apnews.com/article/")
_FOOD = ("https://www.allrecipes.com/recipe/", "https://cooking.nytimes.com/recipes/",
         "https://www.bbcgoodfood.com/recipes/")


def _display_url(url: str) -> str:
    shown = url.split("://", 1)[-1].removeprefix("www.")
    return shown if len(shown) <= 26 else shown[:25] + "…"


def _cut(text: str, limit: int) -> str:
    """Cut ``text`` at a space so that it plus an ellipsis fits in ``limit``."""
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head) + "…"


class SyntheticTweets:
    """A deterministic, labelled mix of tweets; see the module docstring."""

    def __init__(
        self,
        seed: int = 42,
        v2_share: float = 0.3,
        *,
        ai_share: float = 0.33,
        trap_share: float = 0.04,
        implicit_ai_share: float = 0.01,
        non_english_share: float = 0.12,
        retweet_share: float = 0.15,
        duplicate_share: float = 0.03,
        near_duplicate_share: float = 0.03,
        long_share: float = 0.1,
        start: datetime = DEFAULT_START,
        users: int = 600,
    ) -> None:
        shares = {
            "v2_share": v2_share, "ai_share": ai_share, "trap_share": trap_share,
            "implicit_ai_share": implicit_ai_share, "non_english_share": non_english_share,
            "retweet_share": retweet_share, "duplicate_share": duplicate_share,
            "near_duplicate_share": near_duplicate_share, "long_share": long_share,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if ai_share + trap_share + implicit_ai_share > 1.0:
            raise ValueError("ai_share + trap_share + implicit_ai_share must be at most 1")
        if duplicate_share + near_duplicate_share > 1.0:
            raise ValueError("duplicate_share + near_duplicate_share must be at most 1")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.seed = seed
        self.v2_share = v2_share
        self.ai_share = ai_share
        self.trap_share = trap_share
        self.implicit_ai_share = implicit_ai_share
        self.non_english_share = non_english_share
        self.retweet_share = retweet_share
        self.duplicate_share = duplicate_share
        self.near_duplicate_share = near_duplicate_share
        self.long_share = long_share
        self.start_ms = int(start.timestamp() * 1000)
        if self.start_ms <= _X_EPOCH_MS:
            raise ValueError("start must be after the X snowflake epoch (2010-11-04)")
        self._worker = (seed * 2654435761) % 509  # 9 bits, spread over seeds
        self._users = self._make_users(random.Random(f"users-{seed}"), max(users, 2))

    # ------------------------------------------------------------------ public
    def generate(self, n: int | None = None) -> Iterator[SyntheticTweet]:
        """Yield ``n`` tweets (forever if None), from the start of this seed's stream."""
        if n is not None and n < 0:
            raise ValueError(f"n must be 0 or more, got {n}")
        return _Run(self).tweets(n)

    # ------------------------------------------------------------------ users
    @staticmethod
    def _make_users(rng: random.Random, count: int) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        seen_names: set[str] = set()
        seen_ids: set[int] = set()
        while len(users) < count:
            first = rng.randrange(len(_FIRST))
            screen = f"{_FIRST[first]}{rng.choice(_LAST)}{rng.choice(('', '', rng.randrange(10, 9999)))}"
            user_id = rng.randrange(10**6, 2**60)
            if screen in seen_names or user_id in seen_ids or len(screen) > 15:
                continue
            seen_names.add(screen)
            seen_ids.add(user_id)
            created = time.gmtime(rng.randrange(1230768000, 1700000000))
            users.append({
                "id": user_id,
                "id_str": str(user_id),
                "name": f"{_NAMES[first]} {rng.choice(('', '🌱', '✨', '(they/them)', 'PhD'))}".strip(),
                "screen_name": screen,
                "location": rng.choice(_LOCATIONS),
                "verified": rng.random() < 0.03,
                "followers_count": int(rng.paretovariate(1.2) * 40),
                "friends_count": rng.randrange(0, 3000),
                "statuses_count": rng.randrange(1, 90000),
                "created_at": _v1_time(created),
            })
        return users


class _Content(NamedTuple):
    text: str
    lang: str
    is_ai: bool
    urls: dict[str, str]
    traits: frozenset[str]


def _v1_time(tm: time.struct_time) -> str:
    # Written out by hand: strftime's %a and %b follow the locale, X's format does not.
    year, month, day, hour, minute, second, weekday = tm[:7]
    return (
        f"{_WEEKDAYS[weekday]} {_MONTHS[month - 1]} {day:02d} "
        f"{hour:02d}:{minute:02d}:{second:02d} +0000 {year}"
    )


def _iso_time(tm: time.struct_time, millis: int) -> str:
    year, month, day, hour, minute, second = tm[:6]
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


class _Run:
    """The state of one pass over a seed's stream."""

    def __init__(self, config: SyntheticTweets) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.users = config._users
        self.mention_ids = dict(_KNOWN_ACCOUNTS)
        self.mention_ids.update((u["screen_name"], u["id"]) for u in self.users)
        self.recent: deque[_Content] = deque(maxlen=64)
        self.retweets = 0
        self._time_cache: tuple[int, str, time.struct_time] = (-1, "", time.gmtime(0))
        self._trait_cache: dict[tuple[frozenset[str], tuple[str, ...]], frozenset[str]] = {}
        self.slots: dict[str, Callable[[dict[str, str]], str]] = {
            "arxiv": lambda urls: self._link(urls, self._arxiv()),
            "github": lambda urls: self._link(
                urls, f"https://github.com/{self._pick(_GITHUB_ORGS)}/{self._pick(_GITHUB_REPOS)}"),
            "hf": lambda urls: self._link(
                urls, f"https://huggingface.co/{self._pick(_GITHUB_ORGS)}/{self._pick(_GITHUB_REPOS)}"),
            "blog": lambda urls: self._link(urls, self._blog()),
            "jobs": lambda urls: self._link(urls, f"https://jobs.lever.co/ssp-lab/{self.rng.getrandbits(32):08x}"),
            "link_news": lambda urls: self._link(urls, self._pick(_NEWS) + self._pick(_SLUGS)),
            "link_food": lambda urls: self._link(urls, self._pick(_FOOD) + self._pick(_SLUGS)),
            "link_music": lambda urls: self._link(
                urls, f"https://open.spotify.com/album/{self.rng.getrandbits(64):016x}"),
            "link_shop": lambda urls: self._link(
                urls, f"https://www.amazon.com/dp/B0{self.rng.getrandbits(32):08X}"),
            "version": lambda _: f"{self.rng.randrange(1, 4)}.{self.rng.randrange(0, 20)}.{self.rng.randrange(0, 5)}",
            "n": lambda _: str(self.rng.randrange(2, 500)),
            "pct": lambda _: str(self.rng.randrange(1, 99)),
            "day": lambda _: str(self.rng.randrange(1, 100)),
            "temp": lambda _: str(self.rng.randrange(-5, 39)),
        }

    # ------------------------------------------------------------------ helpers
    def _pick(self, options: tuple[Any, ...] | list[Any]) -> Any:
        return options[int(self.rng.random() * len(options))]

    def _tco(self) -> str:
        bits = self.rng.getrandbits(60)
        pairs = _TCO_PAIRS
        return (
            f"https://t.co/{pairs[bits & 4095]}{pairs[(bits >> 12) & 4095]}"
            f"{pairs[(bits >> 24) & 4095]}{pairs[(bits >> 36) & 4095]}{pairs[bits >> 48]}"
        )

    def _link(self, urls: dict[str, str], expanded: str) -> str:
        short = self._tco()
        urls[short] = expanded
        return short

    def _arxiv(self) -> str:
        rng = self.rng
        return f"https://arxiv.org/abs/2{rng.randrange(3, 5)}{rng.randrange(1, 13):02d}.{rng.randrange(1, 20000):05d}"

    def _blog(self) -> str:
        base = self._pick(_BLOGS).replace("{u}", self._pick(_FIRST))
        if base.endswith("="):
            return base + self._tco()[-10:]
        return base + self._pick(_SLUGS)

    def _clock(self, ms: int) -> tuple[str, time.struct_time]:
        # Neighbouring tweets mostly share a second, so the formatting is cached. Only
        # forward moves replace it: a retweeted original lies in the past and would
        # otherwise evict the second the stream is still in.
        sec = ms // 1000
        cached = self._time_cache
        if sec == cached[0]:
            return cached[1], cached[2]
        tm = time.gmtime(sec)
        formatted = _v1_time(tm)
        if sec > cached[0]:
            self._time_cache = (sec, formatted, tm)
        return formatted, tm

    def _snowflake(self, ms: int, worker: int, sequence: int) -> int:
        return ((ms - _X_EPOCH_MS) << 22) | (worker << 12) | (sequence & 0xFFF)

    # ------------------------------------------------------------------ content
    def _fill(self, template: _Template) -> tuple[str, dict[str, str]]:
        urls: dict[str, str] = {}
        if not template.fields:
            return template.text, urls
        values: dict[str, str] = {}
        for name in template.fields:
            maker = self.slots.get(name)
            if maker is not None:
                values[name] = maker(urls)
                continue
            # "lib2" draws from the "lib" vocabulary but differs from "lib".
            base = name.rstrip("0123456789")
            value = self._pick(_VOCAB[base])
            while name != base and value == values.get(base):
                value = self._pick(_VOCAB[base])
            values[name] = value
        return template.text.format_map(values), urls

    def _fresh_content(self) -> _Content:
        c, rng = self.c, self.rng
        if rng.random() < c.non_english_share:
            template = self._pick(_NON_ENGLISH)
        else:
            roll = rng.random()
            if roll < c.ai_share:
                template = self._pick(_AI)
            elif roll < c.ai_share + c.trap_share:
                template = self._pick(_TRAPS)
            elif roll < c.ai_share + c.trap_share + c.implicit_ai_share:
                template = self._pick(_IMPLICIT_AI)
            else:
                template = self._pick(_ORDINARY)
        text, urls = self._fill(template)
        if template.lang == "en" and rng.random() < c.long_share:
            text = self._lengthen(text, template.is_ai)
        return _Content(text, template.lang, template.is_ai, urls, template.traits)

    def _lengthen(self, text: str, is_ai: bool) -> str:
        fillers = _AI_FILLERS if is_ai else _ORDINARY_FILLERS
        # A third of long texts pass the v2 limit too, so note_tweet shows up.
        target = _V2_MAX + 20 if self.rng.random() < 0.33 else _V1_MAX + 20
        parts = [text]
        length = len(text)
        start = int(self.rng.random() * len(fillers))
        for step in range(len(fillers)):
            if length >= target:
                break
            sentence = fillers[(start + step) % len(fillers)]
            parts.append(sentence)
            length += len(sentence) + 1
        if is_ai:
            parts.append(self._pick(_FILLER_TAGS))
        return " ".join(parts)

    def _near_duplicate(self, original: _Content) -> _Content:
        rng = self.rng
        urls = dict(original.urls)
        pieces = _TCO.split(original.text)  # odd indices are links, left untouched
        kind = int(rng.random() * 4)
        if kind == 0:
            pieces = [p if i % 2 else p.lower() for i, p in enumerate(pieces)]
        elif kind == 1:
            pieces = [p if i % 2 else p.upper() for i, p in enumerate(pieces)]
        elif kind == 2:
            pieces[0] = "  " + pieces[0].replace(" ", "  ", 1)
            pieces[-1] = pieces[-1] + " \n"
        elif len(pieces) > 1:
            # Shared through another shortener: new t.co link, same page with tracking.
            old = pieces[1]
            new = self._link(urls, urls.pop(old) + "?utm_source=twitter")
            pieces[1] = new
        else:
            pieces[-1] = pieces[-1] + " " + self._link(urls, self._blog())
        text = "".join(pieces)
        if text == original.text:
            # Changing the case of caseless or already lowercase text changes nothing.
            text = original.text + " "
        traits = (original.traits - {"duplicate"}) | {"near_duplicate"}
        return _Content(text, original.lang, original.is_ai, urls, traits)

    def _content(self) -> _Content:
        c, rng = self.c, self.rng
        if self.recent:
            roll = rng.random()
            if roll < c.duplicate_share:
                original = self._pick(tuple(self.recent))
                return original._replace(traits=original.traits | {"duplicate"})
            if roll < c.duplicate_share + c.near_duplicate_share:
                return self._near_duplicate(self._pick(tuple(self.recent)))
        content = self._fresh_content()
        self.recent.append(content)
        return content

    # ------------------------------------------------------------------ entities
    def _entities_v1(self, text: str, urls: dict[str, str]) -> dict[str, Any]:
        hashtags: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        mentions: list[dict[str, Any]] = []
        entities = {"hashtags": hashtags, "urls": links, "user_mentions": mentions, "symbols": []}
        if not urls and "#" not in text and "@" not in text:
            return entities
        for match in _ENTITY.finditer(text):
            kind = match.lastgroup
            if kind == "tag":
                hashtags.append({"text": match["tag"], "indices": list(match.span())})
            elif kind == "url":
                # A link cut off by truncation is no longer a link.
                expanded = urls.get(match["url"])
                if expanded is not None:
                    links.append({"url": match["url"], "expanded_url": expanded,
                                  "display_url": _display_url(expanded),
                                  "indices": list(match.span())})
            else:
                name = match["user"]
                user_id = self._mention_id(name)
                mentions.append({"screen_name": name, "name": name, "id": user_id,
                                 "id_str": str(user_id), "indices": list(match.span())})
        return entities

    def _entities_v2(self, text: str, urls: dict[str, str]) -> dict[str, Any]:
        entities: dict[str, Any] = {}
        if not urls and "#" not in text and "@" not in text:
            return entities
        for match in _ENTITY.finditer(text):
            kind = match.lastgroup
            start, end = match.span()
            if kind == "tag":
                entities.setdefault("hashtags", []).append(
                    {"start": start, "end": end, "tag": match["tag"]})
            elif kind == "url":
                expanded = urls.get(match["url"])
                if expanded is not None:
                    entities.setdefault("urls", []).append({
                        "start": start, "end": end, "url": match["url"],
                        "expanded_url": expanded, "display_url": _display_url(expanded)})
            else:
                name = match["user"]
                entities.setdefault("mentions", []).append(
                    {"start": start, "end": end, "username": name, "id": str(self._mention_id(name))})
        return entities

    def _mention_id(self, screen_name: str) -> int:
        known = self.mention_ids.get(screen_name)
        if known is None:
            # Stable across processes, unlike hash().
            known = 10**9 + sum(ord(ch) * 131**i for i, ch in enumerate(screen_name)) % 10**12
            self.mention_ids[screen_name] = known
        return known

    # ------------------------------------------------------------------ payloads
    def _v1_status(self, tweet_id: int, ms: int, user: dict[str, Any], content: _Content,
                   flags: list[str]) -> dict[str, Any]:
        text, urls = content.text, content.urls
        status: dict[str, Any] = {
            "created_at": self._clock(ms)[0],
            "id": tweet_id,
            "id_str": str(tweet_id),
            "text": text,
            "source": _SOURCES[int(self.rng.random() * 4)],
            "truncated": False,
            "in_reply_to_status_id": None,
            "in_reply_to_user_id": None,
            "in_reply_to_screen_name": None,
            "user": dict(user),
            "geo": None,
            "place": None,
            "is_quote_status": False,
            "retweet_count": 0,
            "favorite_count": 0,
            "entities": None,
            "favorited": False,
            "retweeted": False,
            "filter_level": "low",
            "lang": content.lang,
            "timestamp_ms": str(ms),
        }
        if len(text) > _V1_MAX:
            # Compatibility mode: the text is cut and ends in a link to the whole tweet.
            flags.append("extended")
            short_urls = dict(urls)
            self_link = self._link(short_urls, f"https://twitter.com/i/web/status/{tweet_id}")
            short = _cut(text, _V1_MAX - len(self_link)) + " " + self_link
            status["text"] = short
            status["truncated"] = True
            status["entities"] = self._entities_v1(short, short_urls)
            status["extended_tweet"] = {
                "full_text": text,
                "display_text_range": [0, len(text)],
                "entities": self._entities_v1(text, urls),
            }
        else:
            status["entities"] = self._entities_v1(text, urls)
        return status

    def _v2_tweet(self, tweet_id: int, ms: int, user: dict[str, Any], text: str, lang: str,
                  urls: dict[str, str], flags: list[str]) -> dict[str, Any]:
        tweet: dict[str, Any] = {
            "id": str(tweet_id),
            "text": text,
            "created_at": _iso_time(self._clock(ms)[1], ms % 1000),
            "author_id": user["id_str"],
            "lang": lang,
            "edit_history_tweet_ids": [str(tweet_id)],
            "possibly_sensitive": False,
        }
        if len(text) > _V2_MAX:
            flags.append("note_tweet")
            short = _cut(text, _V2_MAX)
            tweet["text"] = short
            entities = self._entities_v2(short, urls)
            note: dict[str, Any] = {"text": text}
            note_entities = self._entities_v2(text, urls)
            if note_entities:
                note["entities"] = note_entities
            tweet["note_tweet"] = note
        else:
            entities = self._entities_v2(text, urls)
        if entities:
            tweet["entities"] = entities
        return tweet

    def _traits(self, content: _Content, flags: list[str]) -> frozenset[str]:
        # Few distinct combinations exist; sharing them saves a set per tweet.
        key = (content.traits, tuple(flags))
        traits = self._trait_cache.get(key)
        if traits is None:
            traits = self._trait_cache[key] = content.traits.union(flags)
        return traits

    @staticmethod
    def _v2_user(user: dict[str, Any]) -> dict[str, Any]:
        return {"id": user["id_str"], "name": user["name"], "username": user["screen_name"]}

    def _payload(self, index: int, ms: int, content: _Content) -> SyntheticTweet:
        c, rng = self.c, self.rng
        tweet_id = self._snowflake(ms, self.c._worker, index)
        users = self.users
        user = users[int(rng.random() * len(users))]
        v2 = rng.random() < c.v2_share
        flags = ["v2" if v2 else "v1"]
        if rng.random() >= c.retweet_share:
            if v2:
                data = self._v2_tweet(tweet_id, ms, user, content.text, content.lang, content.urls, flags)
                payload: dict[str, Any] = {"data": data, "includes": {"users": [self._v2_user(user)]}}
            else:
                payload = self._v1_status(tweet_id, ms, user, content, flags)
            return SyntheticTweet(payload, content.is_ai, tweet_id, self._traits(content, flags))

        flags.append("retweet")
        author = users[int(rng.random() * len(users))]
        while author is user:
            author = users[int(rng.random() * len(users))]
        original_ms = ms - 60_000 - int(rng.random() * 3 * 86_400_000)
        sequence = self.retweets
        self.retweets += 1
        original_id = self._snowflake(
            original_ms, _ORIGINAL_WORKER_BIT | ((sequence >> 12) & 0x1FF), sequence)
        rt_text = f"RT @{author['screen_name']}: {content.text}"
        if len(rt_text) > _V1_MAX:
            rt_text = _cut(rt_text, _V1_MAX)
        if v2:
            original = self._v2_tweet(original_id, original_ms, author, content.text,
                                      content.lang, content.urls, flags)
            data = self._v2_tweet(tweet_id, ms, user, rt_text, content.lang, content.urls, [])
            data["referenced_tweets"] = [{"type": "retweeted", "id": original["id"]}]
            payload = {
                "data": data,
                "includes": {"users": [self._v2_user(user), self._v2_user(author)],
                             "tweets": [original]},
            }
        else:
            original = self._v1_status(original_id, original_ms, author, content, flags)
            original["retweet_count"] = rng.randrange(1, 5000)
            rt_content = _Content(rt_text, content.lang, content.is_ai, content.urls, content.traits)
            payload = self._v1_status(tweet_id, ms, user, rt_content, [])
            payload["retweeted_status"] = original
            payload["retweet_count"] = original["retweet_count"]
        return SyntheticTweet(payload, content.is_ai, tweet_id, self._traits(content, flags))

    def tweets(self, n: int | None) -> Iterator[SyntheticTweet]:
        rng = self.rng
        ms = self.c.start_ms
        index = 0
        while n is None or index < n:
            # At least 1 ms apart, so ids strictly increase; about 22 tweets a second.
            ms += 1 + int(rng.expovariate(1 / 45))
            yield self._payload(index, ms, self._content())
            index += 1


def synthetic_payloads(n: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """Yield ``n`` synthetic payloads for ``seed`` (see :class:`SyntheticTweets`)."""
    return (tweet.payload for tweet in SyntheticTweets(seed).generate(n))
