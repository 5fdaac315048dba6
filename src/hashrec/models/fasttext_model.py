"""fastText supervised classification (Joulin et al. 2017): a practical anchor beside the paper's baselines.

Each post is a line `__label__<id> ... <tokens joined by spaces>` (our tokeniser, so that every
model sees the same words); hierarchical softmax and word bigrams. The dev split is only scored
for the report, never used to tune (fastText's autotune is off).

Saving: the native fastText `.bin` bytes are kept as a uint8 array inside weights.safetensors
and written to a temporary file on load (fastText can only read from a path); no pickle.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hashrec.config import check
from hashrec.errors import ConfigError
from hashrec.models.base import Dev, Docs, Recommender, Tags
from hashrec.models.bow import break_ties_by_popularity

PREFIX = "__label__"
ATTEMPTS = 5
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastTextConfig:
    """fastText's own options (same names). bucket: hash buckets for word bigrams, 200k instead
    of fastText's 2M so that a saved model is ~80 MB, not ~800 MB. top_n: probabilities are
    computed for the top_n labels of each post (the others score 0); -1 scores all labels,
    which with ~20k-50k labels costs minutes per 10k posts for no change in top-5 metrics."""

    loss: Literal["hs", "softmax", "ova"] = "hs"
    dim: int = 100
    epoch: int = 25
    lr: float = 0.5
    word_ngrams: int = 2
    min_count: int = 1
    bucket: int = 200_000
    threads: int = 2
    seed: int = 0
    top_n: int = 100

    def __post_init__(self) -> None:
        check(self.dim >= 1 and self.epoch >= 1, "fasttext: dim and epoch must be >= 1")
        check(self.lr > 0, f"fasttext: lr must be > 0, got {self.lr}")
        check(
            self.word_ngrams >= 1 and self.min_count >= 1 and self.bucket >= 1,
            "fasttext: word_ngrams, min_count and bucket must be >= 1",
        )
        check(self.threads >= 1, f"fasttext: threads must be >= 1, got {self.threads}")
        check(self.top_n == -1 or self.top_n >= 1, f"fasttext: top_n must be -1 (all) or >= 1, got {self.top_n}")


def _line(doc: list[str]) -> str:
    # fastText splits on white space: a token must not contain any
    return " ".join("_".join(t.split()) for t in doc)


class FastText(Recommender):
    """Score: fastText's probability of the hashtag label, p(t|d) = (hierarchical) softmax of
    the output layer over the mean of the post's word and bigram embeddings."""

    name = "fasttext"
    Config = FastTextConfig

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        import fasttext

        with tempfile.TemporaryDirectory(prefix="hashrec-fasttext-") as tmp:
            path = Path(tmp) / "train.txt"
            with open(path, "w", encoding="utf-8") as f:
                for doc, ids in zip(docs, self.label_ids(tags)):
                    f.write(" ".join(f"{PREFIX}{i}" for i in ids) + " " + _line(doc) + "\n")
            self.ft_ = self._train(fasttext, path)
        self._index_labels()

    def _train(self, fasttext: Any, path: Path) -> Any:
        """fasttext.train_supervised, retried when it stops with "Encountered NaN".

        fastText 0.9.3 does so at random: the same data, settings and seed on one thread failed
        3 times in 6 in one process on a 2,000-post slice (and at lr 0.05 too, so it is not
        only the divergence fastText's maintainers blame it on). We did not find the cause; a
        fresh attempt usually trains. After ATTEMPTS failures the error says what to try.
        """
        cfg = self.config
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fasttext.train_supervised(
                    input=str(path),
                    loss=cfg.loss,
                    dim=cfg.dim,
                    epoch=cfg.epoch,
                    lr=cfg.lr,
                    wordNgrams=cfg.word_ngrams,
                    minCount=cfg.min_count,
                    bucket=cfg.bucket,
                    thread=cfg.threads,
                    seed=cfg.seed,
                    verbose=0,
                )
            except RuntimeError as e:  # fastText's only report of a NaN
                log.warning("fasttext: attempt %d of %d stopped (%s)", attempt, ATTEMPTS, e)
                error = e
        raise ConfigError(
            f"fasttext: training failed {ATTEMPTS} times ({error}); lower the learning "
            f"rate, e.g. --set lr={cfg.lr / 2:g}"
        )

    def _index_labels(self) -> None:
        self.ft_label_ids_ = {label: int(label[len(PREFIX) :]) for label in self.ft_.get_labels()}

    def _scores(self, docs: Docs) -> np.ndarray:
        # The list form of predict calls the C++ multilinePredict directly; the single-string form
        # breaks on numpy 2 (`np.array(..., copy=False)` in fasttext 0.9.3).
        labels, probs = self.ft_.predict([_line(d) for d in docs], k=self.config.top_n)
        out = np.zeros((len(docs), len(self.labels_)))
        for row, (ls, ps) in enumerate(zip(labels, probs)):
            out[row, [self.ft_label_ids_[label] for label in ls]] = ps
        return break_ties_by_popularity(out, self.label_counts_)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        fd, tmp = tempfile.mkstemp(prefix="hashrec-fasttext-", suffix=".bin")
        os.close(fd)
        try:
            self.ft_.save_model(tmp)
            blob = np.fromfile(tmp, dtype=np.uint8)
        finally:
            os.unlink(tmp)
        return {"fasttext_bin": blob}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        import fasttext

        fd, tmp = tempfile.mkstemp(prefix="hashrec-fasttext-", suffix=".bin")
        os.close(fd)
        try:
            arrays["fasttext_bin"].tofile(tmp)
            self.ft_ = fasttext.load_model(tmp)
        finally:
            os.unlink(tmp)
        self._index_labels()
