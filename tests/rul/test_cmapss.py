from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from twins.rul import (
    CmapssFormatError,
    RulPredictor,
    RunToFailureData,
    TrainedRul,
    load_cmapss,
    score_cmapss_test,
    truncate_units,
    write_cmapss,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def held_out_test(
    tmp_path: Path, fd001: RunToFailureData, trained: TrainedRul
) -> tuple[Path, Path]:
    """A C-MAPSS test/truth pair cut from engines the model never saw (41..70)."""
    held_out = fd001.select_units(np.arange(41, 71))
    cut, truth = truncate_units(held_out, seed=5)
    test_path, truth_path = tmp_path / "test_FD001.txt", tmp_path / "RUL_FD001.txt"
    write_cmapss(test_path, cut)
    truth_path.write_text("".join(f"{int(t)}\n" for t in truth))
    return test_path, truth_path


def test_it_scores_a_test_file_the_standard_way(
    held_out_test: tuple[Path, Path], predictor: RulPredictor
) -> None:
    test_path, truth_path = held_out_test
    scores = score_cmapss_test(predictor, test_path, truth_path, cap_truth=True)
    assert scores["engines"] == 30
    assert scores["rmse"] < 22
    assert 0 <= scores["coverage80"] <= 1 and scores["phm_score"] > 0
    raw = score_cmapss_test(predictor, test_path, truth_path)
    assert (
        raw["rmse"] >= scores["rmse"]
    )  # uncapped truths above the cap can only add error


def test_it_round_trips_the_cmapss_format(
    tmp_path: Path, fd001_slice: RunToFailureData
) -> None:
    path = tmp_path / "train.txt"
    write_cmapss(path, fd001_slice)
    again = load_cmapss(path)
    np.testing.assert_allclose(again.values, fd001_slice.values)
    np.testing.assert_array_equal(again.time, fd001_slice.time)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "1 1 " + "0 " * 24 + "\n1 2 0 0 0\n",
            "line 2: expected 26 numeric columns, got 5",
        ),
        (
            "1 1 " + "0 " * 24 + "\n\n1 2 " + "0 " * 23 + "abc\n",
            "line 3: not a number: 'abc'",
        ),
        (
            "1 1 " + "0 " * 24 + "\n1 1 " + "0 " * 24 + "\n",
            "line 2: cycle 1 of unit 1 does not follow cycle 1",
        ),
        (
            "1.5 1 " + "0 " * 24 + "\n",
            "line 1: unit and cycle must be positive integers",
        ),
        ("", "no data rows"),
    ],
)
def test_it_rejects_malformed_files_naming_the_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "train.txt"
    path.write_text(content)
    with pytest.raises(CmapssFormatError) as err:
        load_cmapss(path)
    assert str(err.value).startswith("train.txt")
    assert message in str(err.value)


def test_it_rejects_a_truth_file_that_does_not_match(
    held_out_test: tuple[Path, Path], predictor: RulPredictor
) -> None:
    test_path, truth_path = held_out_test
    lines = truth_path.read_text().splitlines()
    truth_path.write_text("\n".join(lines[:4] + ["12 13"] + lines[5:]) + "\n")
    with pytest.raises(
        CmapssFormatError, match="RUL_FD001.txt line 5: expected 1 number"
    ):
        score_cmapss_test(predictor, test_path, truth_path)
    truth_path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(CmapssFormatError, match="29 true RUL values for 30 units"):
        score_cmapss_test(predictor, test_path, truth_path)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twins.rul", *args],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_trains_and_evaluates_from_the_command_line(
    tmp_path: Path, fd001_slice: RunToFailureData, held_out_test: tuple[Path, Path]
) -> None:
    train_path = tmp_path / "train_slice.txt"
    write_cmapss(train_path, fd001_slice.select_units(np.arange(1, 21)))
    out = tmp_path / "model"
    trained = run_cli(
        "train",
        "--cmapss",
        str(train_path),
        "--out",
        str(out),
        "--seed",
        "3",
        "--trees",
        "10",
    )
    assert trained.returncode == 0, trained.stderr
    assert set(json.loads(trained.stdout.splitlines()[-1])) >= {
        "rmse",
        "phm_score",
        "coverage80",
        "engines",
    }

    test_path, truth_path = held_out_test
    scored = run_cli(
        "eval",
        "--model",
        str(out),
        "--test",
        str(test_path),
        "--truth",
        str(truth_path),
    )
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout.splitlines()[-1])
    assert result["engines"] == 30 and result["rmse"] > 0

    missing = run_cli(
        "eval",
        "--model",
        str(tmp_path / "nope"),
        "--test",
        str(test_path),
        "--truth",
        str(truth_path),
    )
    assert missing.returncode == 2
    assert (
        "ModelArtifactError" in missing.stderr and "missing meta.json" in missing.stderr
    )

    bad = tmp_path / "bad.txt"
    bad.write_text("1 1 " + "0 " * 24 + "\n" * 16 + "1 2 3\n")
    failed = run_cli(
        "eval", "--model", str(out), "--test", str(bad), "--truth", str(truth_path)
    )
    assert failed.returncode == 2
    assert (
        "CmapssFormatError: bad.txt line 17: expected 26 numeric columns, got 3"
        in failed.stderr
    )


def test_it_imports_no_django() -> None:
    # edge nodes and plain scripts use the package without Django installed
    probe = "import sys, twins.rul; print(sorted(m for m in sys.modules if m.startswith('django')))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_it_vendors_the_published_fd001_file_unchanged() -> None:
    import gzip
    import hashlib

    from twins.rul.const import FD001_TRAIN

    sums = dict(
        reversed(line.split()) for line in (FD001_TRAIN.parent / "SHA256SUMS").read_text().splitlines() if line.strip()
    )
    published = "ce331c082b50f4fcc543e518dea4bed39b663f0c36e8f04393eb9d721c517ba4"
    assert sums["train_FD001.txt"] == published
    assert hashlib.sha256(gzip.decompress(FD001_TRAIN.read_bytes())).hexdigest() == published
    assert hashlib.sha256(FD001_TRAIN.read_bytes()).hexdigest() == sums["train_FD001.txt.gz"]


def test_it_reads_gzip_and_plain_text_alike(tmp_path: Path, fd001: RunToFailureData) -> None:
    import gzip

    plain = tmp_path / "train.txt"
    write_cmapss(plain, fd001.select_units(np.arange(1, 4)))
    packed = tmp_path / "train.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_cmapss(plain), load_cmapss(packed)
    assert sorted(set(a.units.tolist())) == sorted(set(b.units.tolist())) == [1, 2, 3]
    assert np.array_equal(a.values, b.values) and np.array_equal(a.time, b.time)


def test_it_names_a_broken_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "train.txt.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(CmapssFormatError, match="train.txt.gz: not a gzip file"):
        load_cmapss(path)
