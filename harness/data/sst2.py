"""SST-2 (GLUE) from TSV files: train split for training, dev split (872 sentences) for evaluation.

Text becomes fixed-length int64 token ids (one ONNX input, no tokenizer on the device): lower-cased whitespace
tokens, a vocabulary from the training split, id 0 for padding and 1 for unknown words.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import EdgepruneError

PAD, UNK = 0, 1
MAX_LEN = 48          # dev sentences average ~19 tokens; 48 truncates under 1% of them
MIN_COUNT = 2         # words seen once in training carry no signal the model can learn
MAX_VOCAB = 20000     # including pad and unk
TEXT_COLUMNS = ("sentence", "content", "text")   # GLUE train uses `sentence`, the shared dev.tsv `content`


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]          # index = id; tokens[0] = "<pad>", tokens[1] = "<unk>"

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}


def locate(data_dir: Path | None, cache: Path) -> Path:
    """The sst2/ folder under the data folder (or the user cache); there is no official download to fall back on."""
    for base in (data_dir, cache):
        if base is not None and (Path(base) / "sst2" / "train.tsv").is_file() \
                and (Path(base) / "sst2" / "dev.tsv").is_file():
            return Path(base) / "sst2"
    where = f"{Path(data_dir) / 'sst2'}" if data_dir else "no data folder"
    raise EdgepruneError(f"SST-2 needs sst2/train.tsv and sst2/dev.tsv (GLUE TSV) in the folder named by "
                         f"EDGEPRUNE_DATA or --data-dir ({where} has none), and cannot be downloaded automatically.")


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """(sentences, int64 labels) from a TSV with a header row; columns are found by name, in any order."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgepruneError(f"{path} is not a readable UTF-8 TSV file ({exc}).") from exc
    if not rows:
        raise EdgepruneError(f"{path} is empty; expected a header row with `label` and `sentence` columns.")
    header = [h.strip().lower() for h in rows[0]]
    text_col = next((header.index(c) for c in TEXT_COLUMNS if c in header), None)
    if "label" not in header or text_col is None:
        raise EdgepruneError(f"{path} has header {rows[0]}; expected a `label` column and one of "
                             f"{', '.join(TEXT_COLUMNS)}.")
    label_col = header.index("label")
    sentences, labels = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            labels.append(int(row[label_col]))
            sentences.append(row[text_col])
        except (IndexError, ValueError) as exc:
            raise EdgepruneError(f"{path} line {line_no} has no integer label and text ({exc}).") from exc
    return sentences, np.asarray(labels, dtype=np.int64)


def tokenize(sentence: str) -> list[str]:
    return sentence.lower().split()


def build_vocab(sentences: list[str], min_count: int = MIN_COUNT, max_size: int = MAX_VOCAB) -> Vocab:
    """Most frequent tokens first (ties alphabetical, so the vocabulary is deterministic)."""
    counts = Counter(tok for s in sentences for tok in tokenize(s))
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return Vocab(("<pad>", "<unk>", *kept[: max(max_size - 2, 0)]))


def encode(sentences: list[str], vocab: Vocab, max_len: int = MAX_LEN) -> np.ndarray:
    """int64 [N, max_len]: token ids, truncated at max_len, padded with 0 at the end."""
    ids = vocab.ids()
    out = np.zeros((len(sentences), max_len), dtype=np.int64)
    for row, sentence in enumerate(sentences):
        toks = [ids.get(t, UNK) for t in tokenize(sentence)[:max_len]]
        out[row, : len(toks)] = toks
    return out
