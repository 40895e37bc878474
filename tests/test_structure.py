"""One rule, one place (issue 10): no block of six or more lines stands twice in ``src/ssp``.

Each ``.py`` file is read as normalised lines: white space folded, blank lines, comments, import
statements and lone punctuation left out (as the ``duplicates`` tool does). Every window of
``WINDOW`` consecutive lines is hashed; a hash found at two places that do not overlap is a block
written twice, and the test names both places. Data-only modules are left out. Plain text, so it
takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ssp"
WINDOW = 6
# data, not code: word lists of the synthetic source
DATA_ONLY = {"sources/synthetic_vocab.py"}
# blocks someone is still working on, by file; each entry is a debt, not a licence
KNOWN = {
    "model/train.py",  # two metric loops (train.py is being reworked with the quality work)
}
_PUNCTUATION = re.compile(r"^[\s()\[\]{},:;.]*$")
_IMPORT = re.compile(r"^(?:from\s+\S+\s+import\b|import\s+\S)")


def normalised_lines(text: str) -> list[tuple[int, str]]:
    """(line number, normalised text) of the lines that count."""
    lines: list[tuple[int, str]] = []
    in_import = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = " ".join(raw.split())
        if in_import:
            in_import = ")" not in line
            continue
        if not line or line.startswith("#") or _PUNCTUATION.match(line):
            continue
        if _IMPORT.match(line):
            in_import = line.endswith("(")
            continue
        lines.append((number, line))
    return lines


def repeated_blocks(files: dict[str, str], window: int = WINDOW) -> list[tuple[str, str]]:
    """Pairs of places ``file:line`` that start the same ``window`` normalised lines."""
    places: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for name, text in files.items():
        lines = normalised_lines(text)
        for start in range(len(lines) - window + 1):
            block = "\n".join(line for _, line in lines[start:start + window])
            places[hashlib.blake2b(block.encode(), digest_size=12).hexdigest()].append((name, start, lines[start][0]))
    pairs = []
    for found in places.values():
        first = found[0]
        for other in found[1:]:
            if other[0] == first[0] and other[1] - first[1] < window:
                continue  # the same lines seen from an overlapping window (a run of equal lines)
            pairs.append((f"{first[0]}:{first[2]}", f"{other[0]}:{other[2]}"))
    return pairs


def source_files() -> dict[str, str]:
    files = {}
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name not in DATA_ONLY:
            files[name] = path.read_text(encoding="utf-8")
    return files


def test_the_finder_finds_a_repeated_block_and_ignores_what_does_not_count():
    block = "".join(f"value_{n} = compute({n})\n" for n in range(6))
    assert repeated_blocks({"a.py": block, "b.py": "x = 1\n" + block}) == [("a.py:1", "b.py:2")]
    # imports, comments, blank lines and lone brackets do not make a block
    noise = "import os\nfrom a import (\n    b,\n)\n# note\n\n)\n"
    assert repeated_blocks({"a.py": noise * 3, "b.py": noise * 3}) == []
    assert repeated_blocks({"a.py": block.replace("value_3", "other_3"), "b.py": block}) == []
    assert repeated_blocks({"a.py": "pass\n" * 8}) == []  # one run of equal lines is not two places


def test_no_block_of_six_lines_is_written_twice_in_src():
    pairs = [(a, b) for a, b in repeated_blocks(source_files())
             if a.split(":")[0] not in KNOWN and b.split(":")[0] not in KNOWN]
    assert not pairs, "blocks written twice (one rule, one place):\n" + "\n".join(f"  {a} ~ {b}" for a, b in pairs)
