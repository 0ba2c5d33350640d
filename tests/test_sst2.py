"""harness.data.sst2: TSV columns by header name, the vocabulary, fixed-length ids, and the missing-data sentence."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.data import load_task
from harness.data import sst2
from harness.errors import EdgepruneError

DATA = os.environ.get("EDGEPRUNE_DATA")
needs_sst2 = pytest.mark.skipif(not DATA or not (Path(DATA) / "sst2" / "train.tsv").is_file(),
                                reason="EDGEPRUNE_DATA does not hold sst2/")


def write_sst2(folder: Path) -> Path:
    """train.tsv in GLUE's column order (sentence, label), dev.tsv in the shared folder's (label, content)."""
    (folder / "sst2").mkdir(parents=True)
    (folder / "sst2" / "train.tsv").write_text(
        'sentence\tlabel\na "great" film\t1\nA great , great cast\t1\nawful film\t0\nawful awful plot\t0\n')
    (folder / "sst2" / "dev.tsv").write_text("label\tcontent\n1\tgreat film\n0\tan awful unseen plot\n")
    return folder


def test_read_tsv_finds_columns_by_header_name_in_either_order(tmp_path):
    write_sst2(tmp_path)
    text, labels = sst2.read_tsv(tmp_path / "sst2" / "train.tsv")
    assert text[0] == 'a "great" film' and text[1] == "A great , great cast"   # quotes kept verbatim
    assert labels.tolist() == [1, 1, 0, 0] and labels.dtype == np.int64
    text, labels = sst2.read_tsv(tmp_path / "sst2" / "dev.tsv")
    assert text == ["great film", "an awful unseen plot"] and labels.tolist() == [1, 0]


def test_read_tsv_without_a_label_column_is_one_sentence(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tscore\nfine\t1\n")
    with pytest.raises(EdgepruneError, match="label"):
        sst2.read_tsv(path)


def test_read_tsv_with_a_field_over_the_csv_limit_is_one_sentence(tmp_path):
    """A file that is not SST-2 (one field of 200,000 characters) trips csv's field limit: csv.Error underneath."""
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "x" * 200_000 + "\t1\n")
    with pytest.raises(EdgepruneError, match="is not a readable UTF-8 TSV file"):
        sst2.read_tsv(path)


def test_vocab_keeps_frequent_lowercase_tokens_after_pad_and_unk():
    vocab = sst2.build_vocab(["Great film", "great cast", "awful film", "once"], min_count=2)
    assert vocab.tokens == ("<pad>", "<unk>", "film", "great")      # count 2 each, ties alphabetical
    assert len(sst2.build_vocab(["a b c d a b c d"], min_count=1, max_size=4)) == 4


def test_encode_pads_with_zero_truncates_and_maps_unknown_to_one():
    vocab = sst2.build_vocab(["good good bad bad"], min_count=1)
    ids = vocab.ids()
    x = sst2.encode(["good bad", "bad never good good bad", ""], vocab, max_len=4)
    assert x.dtype == np.int64 and x.shape == (3, 4)
    assert x[0].tolist() == [ids["good"], ids["bad"], 0, 0]
    assert x[1].tolist() == [ids["bad"], sst2.UNK, ids["good"], ids["good"]]
    assert x[2].tolist() == [0, 0, 0, 0]


def test_load_task_builds_fixed_length_int64_inputs_and_applies_limits(tmp_path):
    task = load_task("sst2", write_sst2(tmp_path))
    assert task.train_x.shape == (4, sst2.MAX_LEN) and task.eval_x.shape == (2, sst2.MAX_LEN)
    assert task.train_x.dtype == np.int64 and task.num_classes == 2
    assert task.extra == {"vocab_size": 6, "max_len": sst2.MAX_LEN}    # pad, unk, great, awful, film, plot
    assert task.input_shape == [None, sst2.MAX_LEN]
    limited = load_task("sst2", tmp_path, train_limit=2, eval_limit=1)
    assert len(limited.train_x) == 2 and len(limited.eval_x) == 1
    assert limited.extra == task.extra              # the vocabulary never depends on the limit


def test_missing_sst2_folder_names_the_data_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(EdgepruneError) as info:
        load_task("sst2", tmp_path)
    message = str(info.value)
    assert "EDGEPRUNE_DATA" in message and "--data-dir" in message and "\n" not in message
    with pytest.raises(EdgepruneError, match="EDGEPRUNE_DATA"):
        load_task("sst2", None)


@needs_sst2
@pytest.mark.realdata
def test_real_sst2_has_the_glue_splits():
    task = load_task("sst2", Path(DATA))
    assert len(task.train_y) == 67349 and len(task.eval_y) == 872
    assert set(np.unique(task.eval_y)) == {0, 1}
    assert 5000 < task.extra["vocab_size"] <= sst2.MAX_VOCAB
    assert (task.eval_x[:, 0] > 0).all()            # every dev sentence has a first token


@needs_sst2
@pytest.mark.realdata
def test_quick_profile_sst2_ffn_learns_the_dev_split(tmp_path):
    """The `sst2` plan as the quick profile runs it (subset, one epoch): well above the 50% of chance."""
    from harness.experiments.baseline import trained_baseline
    from harness.experiments.settings import PROFILES, TrainSettings
    from harness.plans import PLANS

    plan, profile = PLANS["sst2"], PROFILES["quick"]
    task = load_task(plan.task, Path(DATA), profile.train_limit, profile.eval_limit)
    ts = TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=profile.epochs,
                       train_limit=profile.train_limit, eval_limit=profile.eval_limit)
    variant = trained_baseline(tmp_path, ts, task, quiet=True)
    assert variant.metrics["accuracy"] > 0.60
