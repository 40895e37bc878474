"""A fresh clone with no ``../shared`` beside it: the suite collects, and the tests that need the real
fixture tweets are skipped with one clear reason (or fail with ``SSP_REQUIRE_FIXTURES=1``).

The clone is a copy of the working tree's tracked and untracked (not ignored) files, so it tests what
is on disk, not only what is committed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIP_REASON = "real fixture tweets not found: set SSP_FIXTURES_DIR to a folder with tweets_v1/sample_200.jsonl"
GOLD_SKIP_REASON = ("real fixture gold labels not found: set SSP_FIXTURES_DIR to a folder with "
                    "labelled/sample_200_gold.tsv")

# Written into the copy: every shared fixture, directly and through another fixture, and the one in the repo.
FIXTURE_USERS = '''
from pathlib import Path

import pytest

import ssp


def test_ssp_is_imported_from_the_copy():
    assert Path(ssp.__file__).resolve().is_relative_to(Path(__file__).resolve().parents[1])


@pytest.fixture
def first_line(fixture_tweets_path):
    return fixture_tweets_path.read_bytes().splitlines()[0]


def test_tweets(fixture_tweets_path):
    assert fixture_tweets_path.is_file()


def test_tweets_through_another_fixture(first_line):
    assert first_line


def test_gold(sample_200_gold_path):
    assert sample_200_gold_path.is_file()


def test_real_gold(real_gold_path):
    assert real_gold_path.is_file()


def test_written_dev_is_in_the_repo(written_dev_path):
    assert written_dev_path.read_text(encoding="utf-8").startswith("id\\tlabel\\tkind\\tlang\\ttext\\n")
'''


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """The working tree's files (tracked + untracked, not ignored) in a folder with no ``shared`` beside it."""
    clone = tmp_path_factory.mktemp("fresh-clone") / "ssp"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is listed but absent
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (clone.parent / "shared").exists()
    (clone / "tests" / "test_shared_fixture_users.py").write_text(FIXTURE_USERS, encoding="utf-8")
    return clone


def _pytest(clone: Path, *args: str, require: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SSP_FIXTURES_DIR", "SSP_REQUIRE_FIXTURES", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(clone / "src")
    if require:
        env["SSP_REQUIRE_FIXTURES"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)


def test_fresh_clone_collects_without_errors(fresh_clone):
    result = _pytest(fresh_clone, "--collect-only", "-q")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "error" not in output.splitlines()[-1].lower(), output
    assert "tests/test_tweets.py::test_fixture_records_are_clean" in result.stdout


def test_fresh_clone_skips_tests_that_need_the_real_tweets(fresh_clone):
    result = _pytest(fresh_clone, "tests/test_tweets.py", "tests/test_shared_fixture_users.py", "-q", "-rs")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, output
    # 3 known tweets + 3 other tests of test_tweets.py, 3 + 1 (gold) in the users file
    assert "10 skipped" in summary, output
    skipped = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all(SKIP_REASON in line or GOLD_SKIP_REASON in line for line in skipped), output
    assert sum(GOLD_SKIP_REASON in line for line in skipped) == 1, output  # real_gold_path: the tweets first
    assert "passed" in summary  # the tests of test_tweets.py that build their own payloads, and written_dev


def test_fresh_clone_fails_missing_fixtures_when_they_are_required(fresh_clone):
    result = _pytest(fresh_clone, "tests/test_tweets.py", "-q", "-rE", "-k", "fixture_records", require=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert SKIP_REASON in output and "SSP_REQUIRE_FIXTURES=1" in output, output
    assert "skipped" not in output.strip().splitlines()[-1], output


def test_real_gold_path_joins_the_gold_labels_to_the_payloads(real_gold_path, fixture_tweets_path):
    records = [json.loads(line) for line in real_gold_path.read_text(encoding="utf-8").splitlines()]
    payloads = [json.loads(line) for line in fixture_tweets_path.read_bytes().splitlines() if line.strip()]
    assert len(records) == 200
    assert sorted(r["id"] for r in records) == sorted(p["id_str"] for p in payloads)
    assert all(set(r) == {"id", "label", "kind", "payload"} and r["payload"]["id_str"] == r["id"] for r in records)
    assert Counter(r["label"] for r in records) == {0: 196, 1: 2, -1: 2}
