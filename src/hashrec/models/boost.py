"""The talk's own idea (docs/paper.md §9): the trained network as a feature extractor, gradient-boosted trees on top.

`Boost` takes a trained base recommender (acnn by intent; any registered model works), keeps its top
`n_candidates` hashtags per post, describes every (post, candidate) pair with features, and lets
LightGBM re-score the candidates. By default it never adds a hashtag the base did not propose, so
the base's recall at `n_candidates` is the ceiling; `from_scorers=M` lets each scorer's top M join
the pool (the base's last candidates make room), for bases whose recall is the bottleneck.

Features, by group (`BoostConfig.features`; ablations are config values):
- base:    the candidate's base score, its rank, its gap to the post's top score, and the post's top
           score (the base's confidence).
- label:   log training frequency of the hashtag and its length in characters.
- post:    post length in tokens; CJK or not (the language).
- lexical: character overlap between the hashtag and the post (useful for Chinese, where hashtags
           are phrases of the post's characters) and the share of the hashtag's characters covered
           by post words found inside it ("blacklivesmatter" <- black, lives, matter).
- scorers: per extra model (NB, IBM1, kNN, TTM, ...): its score for the candidate, its rank and the
           gap to its top score, read from its top-SCORER_RANKS list (beyond it: rank 100, score missing).
- rep:     the network's own representation (neural bases only): `hidden`, the combined layer that feeds
           the softmax (the talk's report uses exactly this vector), reduced by PCA to `rep_dims`;
           the candidate's output-layer vector W_out[c] reduced by PCA to `rep_dims`; and the logit
           hidden . W_out[c] + b_c and cosine(hidden, W_out[c]). The trees see post and hashtag in one space.
           PCA because a 200-d hidden on ~500k candidate rows costs memory and CPU without a matching gain.

Leakage protocol. The booster must never learn from base scores on posts the base was trained on
(their scores are overconfident and test posts will not look like them). `Boost.fit(train, dev)`
therefore (1) refuses unless `train` is exactly the base's (and every scorer's) training set,
proven by `trained_on_["train_sha256"]` (base.fingerprint of the training texts); (2) learns only
from dev posts, after dropping any dev post whose text is also a training text; (3) splits those
dev posts at random into a part the trees learn from and a `stop_fraction` part that stops
boosting early (gbdt). acnn also picks its best epoch on the same dev posts; that selection is a
single scalar over <= 10 epochs, so the base's dev scores are close to, not exactly, unseen-data
scores (docs/results/boost.md discusses it).

Persistence: the LightGBM model is stored as text (`model_to_string`) inside model.json; the PCA
arrays in weights.safetensors. Base and scorers are referenced by path and loaded with
`Recommender.load`; their weights' SHA-256 is checked on load, so moving or retraining them
breaks the link loudly, never silently.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hashrec.config import check
from hashrec.data import CJK, Post
from hashrec.errors import ConfigError, ModelFileError
from hashrec.models.base import (
    CHUNK,
    Dev,
    Docs,
    Ranking,
    Recommender,
    Tags,
    Times,
    Users,
    check_posts,
    fingerprint,
    model_sha256,
    top_k,
)
from hashrec.store import atomic_open
from hashrec.tokens import cache_dir, docs_key, tokenize_many

FEATURE_GROUPS = ("base", "label", "post", "lexical", "scorers", "rep")
SCORER_RANKS = 100  # a scorer's rank beyond its top 100 is reported as 100: only the head matters

# The best measured setting (weibo 0.2697 ± 0.0005 F1@1 over 3 booster seeds, docs/results/boost.md):
# `hashrec train --model boost --data DIR` without --base trains these parts first (api.train_boost).
# (name, params): that run's acnn had 4 epochs at gensim's word2vec scale (w2v_std=0, docs/results/acnn.md);
# hknn's base is the recipe's acnn, its h alone (words=False), as in that run.
RECIPE_BASE = ("acnn", {"epochs": 4, "w2v_std": 0.0})
RECIPE_SCORERS = (
    ("knn", {}),
    ("nb", {}),
    ("fasttext", {}),
    ("ibm1", {}),
    ("topicwa", {}),
    ("ttm", {}),
    ("hknn", {"words": False}),
)
RECIPE_BOOST = {"from_scorers": 5}


@dataclass(frozen=True)
class BoostConfig:
    base: str = ""  # model directory of the trained base recommender (required)
    scorers: tuple[str, ...] = ()  # model directories whose scores become features
    n_candidates: int = 50  # candidates re-ranked per post; their recall is the ceiling
    from_scorers: int = 0  # each scorer's top this-many join the pool (replacing the base's last); 0 = base only
    features: tuple[str, ...] = FEATURE_GROUPS
    rep_dims: int = 16  # PCA components kept of the combined layer and of the output-layer hashtag vectors
    objective: Literal["lambdarank", "binary"] = "lambdarank"  # re-ranker vs plain classifier (docs/paper.md §9)
    boosting: Literal["gbdt", "dart"] = "gbdt"  # dart: the talk's report (docs/paper.md §9); no early stopping there
    n_estimators: int = 500  # upper bound; gbdt stops early on the held-out dev part
    learning_rate: float = 0.05
    num_leaves: int = 31  # LightGBM's default
    min_child_samples: int = 50  # leaves of >= 50 candidate rows: rows of one post are correlated
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8  # with feature_fraction, what the seed changes between runs
    stop_fraction: float = 0.2  # share of the usable dev posts held out to stop boosting early
    early_stopping: int = 50  # rounds without a better held-out P@1 before gbdt stops
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            bool(self.base),
            "boost needs base=MODEL_DIR, the trained model whose candidates it "
            "re-ranks (hashrec train --model boost --base runs/acnn ...)",
        )
        check(self.n_candidates >= 2, f"n_candidates must be >= 2 (something to re-rank), got {self.n_candidates}")
        check(
            0 <= self.from_scorers and self.from_scorers * len(self.scorers) < self.n_candidates,
            f"from_scorers x number of scorers must be < n_candidates ({self.n_candidates}), got "
            f"{self.from_scorers} x {len(self.scorers)}",
        )
        check(
            len(self.features) > 0 and set(self.features) <= set(FEATURE_GROUPS),
            f"features must be a non-empty subset of {FEATURE_GROUPS}, got {self.features!r}",
        )
        check(0.0 < self.stop_fraction < 1.0, f"stop_fraction must be in (0, 1), got {self.stop_fraction}")
        check(
            0.0 < self.feature_fraction <= 1.0 and 0.0 < self.bagging_fraction <= 1.0,
            "feature_fraction and bagging_fraction must be in (0, 1]",
        )
        for name in ("rep_dims", "n_estimators", "num_leaves", "min_child_samples", "early_stopping", "threads"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")


# ---------------------------------------------------------------------------- feature helpers


def model_top(model: Recommender, checksum: str, docs: Docs, m: int) -> tuple[np.ndarray, np.ndarray]:
    """A model's top-m label ids and scores per post, best first, each (n, m); cached on disk.

    Scoring 10k posts with kNN or NB takes minutes on a shared CPU, so the lists are kept under
    cache_dir()/boost/, keyed by the model's weights checksum and the posts (never stale).
    """
    path = cache_dir() / "boost" / f"{docs_key(f'top-1 {checksum} {m}', docs)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["ids"], z["scores"]
    ids, scores = model._top_k(docs, m)
    with atomic_open(path, "wb") as f:
        np.savez(f, ids=ids, scores=scores)
    return ids, scores


def top_features(ids: np.ndarray, scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(n, N, 3): a model's score, rank and gap to its top score for the label ids `cols` (n, N).

    `ids`, `scores` (n, m) are the model's top-m list. Beyond the list, or for a label the model
    does not know (-1), rank = m and score and gap are NaN (LightGBM's missing value): only the
    head of a ranking matters, and a list is far cheaper to keep than 19k scores per post.

    >>> top_features(np.array([[4, 2]]), np.array([[0.6, 0.3]]), np.array([[2, 7]])).tolist()
    [[[0.30000001192092896, 1.0, 0.30000001192092896], [nan, 2.0, nan]]]
    """
    match = (cols[:, :, None] == ids[:, None, :]) & (cols[:, :, None] >= 0)  # (n, N, m)
    found, pos = match.any(2), match.argmax(2)
    s = np.where(found, np.take_along_axis(scores, pos, axis=1), np.nan)
    rank = np.where(found, pos, ids.shape[1])
    return np.stack([s, rank, scores[:, :1] - s], axis=2).astype(np.float32)


def lexical_features(doc: list[str], tags: Sequence[str]) -> np.ndarray:
    """(len(tags), 2): share of each hashtag's distinct characters found in the post, and the share of
    its characters covered by post words (>= 2 characters) that occur inside it.

    >>> lexical_features(["black", "lives", "matter", "now"], ["blacklivesmatter", "dogs"]).tolist()
    [[1.0, 1.0], [0.5, 0.0]]
    """
    chars = set("".join(doc))
    words = {w for w in doc if len(w) >= 2}
    out = np.zeros((len(tags), 2), dtype=np.float32)
    for j, tag in enumerate(tags):
        tag = tag.lower()
        tag_chars = {c for c in tag if c.isalnum()}
        if tag_chars:
            out[j, 0] = len(tag_chars & chars) / len(tag_chars)
            out[j, 1] = min(1.0, sum(len(w) for w in words if w in tag) / len(tag))
    return out


class PCA:
    """Principal components by SVD of the centred rows (no scikit-learn in the dependencies)."""

    def __init__(self, mean: np.ndarray, components: np.ndarray) -> None:
        self.mean, self.components = mean, components  # (d,), (k, d)

    @classmethod
    def fit(cls, x: np.ndarray, k: int) -> PCA:
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean.astype(np.float32), vt[:k].astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T


@dataclass
class Raw:
    """Per-post material for the features.

    Candidate ids (n, N), per-group blocks (n, N, f), the base's combined layer (n, hidden).
    """

    cand: np.ndarray
    blocks: dict[str, np.ndarray]
    hidden: np.ndarray | None

    @classmethod
    def concat(cls, parts: list[Raw]) -> Raw:
        return cls(
            np.concatenate([p.cand for p in parts]),
            {g: np.concatenate([p.blocks[g] for p in parts]) for g in parts[0].blocks},
            None if parts[0].hidden is None else np.concatenate([p.hidden for p in parts]),
        )


MEMO = 4  # Raw entries kept per process: dev and test of two benchmarks
_MEMO: dict[str, Raw] = {}


# ---------------------------------------------------------------------------- the recommender


class Boost(Recommender):
    """LightGBM re-ranker of a base model's top candidates (docs/paper.md §9); `boost` in the registry.

    Attributes: `base_` and `scorers_` (the loaded models), `booster_` (lightgbm.Booster),
    `feature_names_`, `best_iteration_`, `post_pca_` / `tag_pc_` (with the "rep" group).
    `recommend(texts, k)` returns at most `n_candidates` hashtags, all from the candidate pool (the
    base's top `n_candidates`, plus each scorer's top `from_scorers` when that is set).
    """

    name = "boost"
    Config = BoostConfig

    # ------------------------------------------------------------------ training

    def fit(self, train: Sequence[Post], dev: Sequence[Post] | None = None) -> Boost:
        """Check the leakage guard, then learn from the dev posts the base never trained on."""
        cfg = self.config
        train = check_posts(train, "boost.fit(train)")
        self._load_models()
        digest = fingerprint([p.text for p in train])
        for path, model in zip((cfg.base, *cfg.scorers), (self.base_, *self.scorers_)):
            theirs = model.trained_on_.get("train_sha256")
            if theirs is None:
                raise ConfigError(
                    f"boost: {path} records no training fingerprint (trained_on.train_sha256; "
                    "saved by an older hashrec), so boost cannot prove it never learns from that "
                    "model's training posts; retrain it with this hashrec"
                )
            if theirs != digest:
                raise ConfigError(
                    f"boost: the train posts given are not the ones {path} was trained on; pass "
                    "that model's own training split as train (boost learns from dev posts only, "
                    "and needs train to exclude them)"
                )
        if not dev:
            raise ConfigError(
                "boost learns from dev posts the base never saw; give a dev split "
                "(DATA/dev.jsonl.gz, or fit(train, dev))"
            )
        seen = {p.text for p in train}
        usable = [p for p in check_posts(dev, "boost.fit(dev)") if p.text not in seen]
        if not usable:
            raise ConfigError("boost: every dev post is also a training post of the base; give held-out posts")
        self.trained_on_ = {
            **self.trained_on_,
            "n_train": len(train),
            "train_sha256": digest,
            "n_dev": len(dev),
            "n_dev_dropped_as_train": len(dev) - len(usable),
        }
        # not super().fit: that would tokenise every training post, and boost learns from dev posts only
        self._fit([], [], Dev(tokenize_many([p.text for p in usable]), [p.hashtags for p in usable]))
        return self

    def _load_models(self) -> None:
        cfg = self.config
        self.base_ = Recommender.load(cfg.base)
        self.scorers_ = [Recommender.load(p) for p in cfg.scorers]
        self.checksums_ = [model_sha256(p) for p in (cfg.base, *cfg.scorers)]
        if "rep" in cfg.features and not self._neural():
            raise ConfigError(
                f"boost: feature group 'rep' needs a neural base (acnn, cnn, attention), "
                f"{cfg.base} is {self.base_.name}; drop it, e.g. --set "
                "\"features=('base','label','post','lexical','scorers')\""
            )
        names = [s.name for s in self.scorers_]
        self.scorer_names_ = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]
        # each scorer's label id of every base label (-1: unknown to that scorer)
        self.scorer_cols_ = [np.array([s.label_index_.get(t, -1) for t in self.base_.labels_]) for s in self.scorers_]

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        """Learn from `dev` only (`docs` and `tags`, the base's training posts, are never used)."""
        import lightgbm as lgb

        cfg = self.config
        assert dev is not None  # fit() refuses to run without dev posts
        # candidates are base labels: take the base's label set (the same training posts, checked in fit)
        self.labels_, self.label_index_ = self.base_.labels_, self.base_.label_index_
        self.label_counts_ = self.base_.label_counts_
        self.trained_on_["n_labels"] = len(self.labels_)
        if "rep" in cfg.features:
            self.tag_pc_ = PCA.fit(self._out_weight(), cfg.rep_dims)
        raw = self._raw(dev.docs)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(dev.docs))
        n_stop = max(1, int(round(cfg.stop_fraction * len(order))))
        parts = {"stop": order[:n_stop], "fit": order[n_stop:]}
        if "rep" in cfg.features:
            self.post_pca_ = PCA.fit(raw.hidden[parts["fit"]], cfg.rep_dims)
        data, recall = {}, {}
        for part, idx in parts.items():
            X, cand = self._assemble(raw, idx), raw.cand[idx]
            gold = [set(dev.tags[i]) for i in idx]
            y = np.array([[self.labels_[c] in g for c in row] for row, g in zip(cand, gold)], dtype=np.float32)
            recall[part] = float(y.sum() / max(1, sum(map(len, gold))))
            keep = y.any(1) if (part == "fit" and cfg.objective == "lambdarank") else np.ones(len(y), bool)
            data[part] = (X[keep].reshape(-1, X.shape[2]), y[keep].ravel(), cand.shape[1])
        self.feature_names_ = self._feature_names()
        self.booster_, self.best_iteration_ = self._train_booster(lgb, data)
        self.trained_on_ = {
            **self.trained_on_,
            "n_dev_fit": len(parts["fit"]),
            "n_dev_stop": n_stop,
            "candidate_recall": recall,
            "best_iteration": self.best_iteration_,
        }
        print(format_importance(importance(self)[:20]), file=sys.stderr)
        # calibrated on the early-stopping part only: the trees fitted the rest, their scores there are optimistic
        stop = parts["stop"].tolist()
        self._calibrate(Dev([dev.docs[i] for i in stop], [dev.tags[i] for i in stop]))

    def _train_booster(self, lgb: Any, data: dict) -> tuple[Any, int]:
        """LightGBM on the "fit" part; gbdt stops on held-out P@1 of the "stop" part (dart cannot stop early)."""
        cfg = self.config
        params = {
            "objective": cfg.objective,
            "boosting": cfg.boosting,
            "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.num_leaves,
            "min_child_samples": cfg.min_child_samples,
            "feature_fraction": cfg.feature_fraction,
            "bagging_fraction": cfg.bagging_fraction,
            "bagging_freq": 1,
            "num_threads": cfg.threads,
            "seed": cfg.seed,
            "deterministic": True,
            "metric": "None",
            "verbosity": -1,
        }
        sets = {}
        for part, (X, y, n) in data.items():
            group = [n] * (len(y) // n) if cfg.objective == "lambdarank" else None
            sets[part] = lgb.Dataset(
                X, y, group=group, feature_name=self.feature_names_, free_raw_data=False, reference=sets.get("fit")
            )
        n = data["stop"][2]

        def p_at_1(preds: np.ndarray, ds: Any) -> tuple[str, float, bool]:
            """Share of held-out posts whose top re-scored candidate is a gold hashtag (F1@1's numerator)."""
            hit = np.take_along_axis(ds.get_label().reshape(-1, n), preds.reshape(-1, n).argmax(1)[:, None], 1)
            return "p@1", float(hit.mean()), True

        callbacks = [lgb.early_stopping(cfg.early_stopping, verbose=False)] if cfg.boosting == "gbdt" else []
        booster = lgb.train(
            params,
            sets["fit"],
            num_boost_round=cfg.n_estimators,
            valid_sets=[sets["stop"]],
            valid_names=["stop"],
            feval=p_at_1,
            callbacks=callbacks,
        )
        best = (
            booster.best_iteration
            if cfg.boosting == "gbdt" and booster.best_iteration > 0
            else booster.current_iteration()
        )
        return booster, int(best)

    # ------------------------------------------------------------------ features

    def _out_weight(self) -> np.ndarray:
        return self.base_.net_.out.weight.detach().float().cpu().numpy()  # (n_labels, hidden)

    def _feature_names(self) -> list[str]:
        names = {
            "base": ["base_score", "base_rank", "base_gap", "base_top"],
            "label": ["log_freq", "tag_chars"],
            "post": ["post_len", "cjk"],
            "lexical": ["char_overlap", "word_cover"],
            "scorers": [f"{s}_{f}" for s in self.scorer_names_ for f in ("score", "rank", "gap")],
            "rep": ["logit", "cosine"]
            + [f"h_pc{i}" for i in range(len(self.post_pca_.components))]  # "h_pc": saved names
            + [f"tag_pc{i}" for i in range(len(self.tag_pc_.components))]
            if "rep" in self.config.features
            else [],
        }
        return [n for g in FEATURE_GROUPS if g in self.config.features for n in names[g]]

    def _assemble(self, raw: Raw, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(n, N, n_features) of the configured groups, in FEATURE_GROUPS order (as _feature_names)."""
        blocks = []
        for g in FEATURE_GROUPS:
            if g not in self.config.features:
                continue
            blocks.append(raw.blocks[g][rows])
            if g == "rep":
                cand = raw.cand[rows]
                hidden_pc = self.post_pca_(raw.hidden[rows]).astype(np.float32)
                tag_pc = self.tag_pc_(self._out_weight()).astype(np.float32)
                inside = (cand < len(tag_pc))[:, :, None]
                blocks += [
                    np.broadcast_to(hidden_pc[:, None, :], (*cand.shape, hidden_pc.shape[1])),
                    np.where(inside, tag_pc[np.where(inside[:, :, 0], cand, 0)], np.nan),
                ]
        return np.concatenate(blocks, axis=2)

    def _raw(self, docs: Docs) -> Raw:
        """Everything about the posts that does not depend on the fitted booster, memoised in this process.

        Seeds and variants of boost over the same base, scorers and posts then score the posts once.
        Keyed by the posts' tokens, the models' weight checksums and the pool's settings; the last
        MEMO entries are kept. Scorers' top lists are also cached on disk (model_top).
        """
        cfg = self.config
        key = docs_key(json.dumps([self.checksums_, cfg.n_candidates, cfg.from_scorers]), docs)
        if key not in _MEMO:
            while len(_MEMO) >= MEMO:
                _MEMO.pop(next(iter(_MEMO)))
            # a neural base is run per chunk (the combined layer comes from the same pass);
            # any other base's list is cached
            m = max(SCORER_RANKS, cfg.n_candidates)
            tops = [None if self._neural() else model_top(self.base_, self.checksums_[0], docs, m)]
            tops += [model_top(s, c, docs, SCORER_RANKS) for s, c in zip(self.scorers_, self.checksums_[1:])]
            _MEMO[key] = Raw.concat(
                [
                    self._raw_chunk(
                        docs[i : i + CHUNK], [t and (t[0][i : i + CHUNK], t[1][i : i + CHUNK]) for t in tops]
                    )
                    for i in range(0, len(docs), CHUNK)
                ]
            )
        return _MEMO[key]

    def _neural(self) -> bool:
        """Whether the base exposes the network's layers (acnn, cnn, attention): the combined layer and W_out."""
        return hasattr(getattr(self.base_, "net_", None), "features")

    def _pool(self, cand: np.ndarray, tops: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(n, N) candidate base-label ids: the base's top N `cand`, best first; with `from_scorers` = M,
        each scorer's top M (known to the base) join and the base's last candidates make room.
        """
        m = self.config.from_scorers
        if not m or not tops:
            return cand
        to_base = [np.array([self.base_.label_index_.get(t, -1) for t in s.labels_]) for s in self.scorers_]
        heads = [tb[ids[:, :m]] for tb, (ids, _) in zip(to_base, tops)]  # (n, M) base ids per scorer
        out = np.empty_like(cand)
        for i, row in enumerate(cand):
            have = set(row.tolist())
            new = list(dict.fromkeys(c for head in heads for c in head[i].tolist() if c >= 0 and c not in have))
            out[i] = np.concatenate([row[: len(row) - len(new)], np.array(new, dtype=cand.dtype)])
        return out

    def _raw_chunk(self, docs: Docs, tops: list[tuple[np.ndarray, np.ndarray] | None]) -> Raw:
        """Raw of a CHUNK of posts; `tops` are the top lists of the same posts: the base's (None for a
        neural base: computed here), then each scorer's."""
        hidden = None
        if tops[0] is None:
            scores, hidden = self.base_.represent(docs)  # one forward pass gives both
            # only the softmax's columns: the rest are zeros, and a float64 copy of all of them
            # (tweeteval: 49,792 labels, 10,509 in the softmax) would be 5x the memory for nothing
            scores = scores[:, : self.base_.net_.out.out_features].astype(np.float64)
            base_ids, base_scores = top_k(scores, max(SCORER_RANKS, self.config.n_candidates))
        else:
            base_ids, base_scores = tops[0]
        tops = tops[1:]
        cand = self._pool(base_ids[:, : self.config.n_candidates], tops)  # (n, N) base label ids
        n, N = cand.shape

        def post_level(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v, dtype=np.float32).reshape(n, 1, -1)
            return np.broadcast_to(v, (n, N, v.shape[2]))

        blocks = {
            "base": np.concatenate([top_features(base_ids, base_scores, cand), post_level(base_scores[:, 0])], axis=2),
            "label": np.stack(
                [
                    np.log1p(self.label_counts_[cand]).astype(np.float32),
                    np.array([len(t) for t in self.labels_], dtype=np.float32)[cand],
                ],
                axis=2,
            ),
            "post": post_level(np.array([[len(d), float(any(CJK.search(w) for w in d))] for d in docs])),
            "lexical": np.stack([lexical_features(d, [self.labels_[c] for c in row]) for d, row in zip(docs, cand)]),
            "scorers": np.concatenate(
                [np.zeros((n, N, 0), np.float32)]
                + [top_features(ids, vals, cols[cand]) for (ids, vals), cols in zip(tops, self.scorer_cols_)],
                axis=2,
            ),
        }
        if hidden is not None:
            W, b = self._out_weight(), self.base_.net_.out.bias.detach().float().cpu().numpy()
            # acnn's output layer covers only its min_label_count labels: others' rep features are missing
            inside = cand < len(W)
            safe = np.where(inside, cand, 0)
            w_c = W[safe]  # (n, N, hidden)
            dot = np.einsum("nh,nkh->nk", hidden, w_c)
            cosine = dot / (np.linalg.norm(hidden, axis=1)[:, None] * np.linalg.norm(w_c, axis=2) + 1e-9)
            blocks["rep"] = np.where(inside[:, :, None], np.stack([dot + b[safe], cosine], axis=2), np.nan)
        return Raw(cand, {g: np.ascontiguousarray(v, dtype=np.float32) for g, v in blocks.items()}, hidden)

    # ------------------------------------------------------------------ inference

    def rank_docs(self, docs: Docs, k: int, times: Times = None, users: Users = None) -> list[Ranking]:
        """Top-k of the base's candidates by the booster's score; ties keep the base's order.

        Boost is blind to time and author: `times` and `users` are accepted and ignored.
        """
        self._check_fitted()
        if not docs:
            return []
        raw = self._raw(docs)
        cand, X = raw.cand, self._assemble(raw)
        n, N, F = X.shape
        s = self.booster_.predict(X.reshape(-1, F), num_iteration=self.best_iteration_).reshape(n, N)
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return [[(self.labels_[cand[i, j]], float(s[i, j])) for j in row] for i, row in enumerate(order)]

    # ------------------------------------------------------------------ persistence

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {}
        if "rep" in self.config.features:
            arrays = {
                "post_pca_mean": self.post_pca_.mean,
                "post_pca_components": self.post_pca_.components,
                "tag_pca_mean": self.tag_pc_.mean,
                "tag_pca_components": self.tag_pc_.components,
            }
        return arrays, {
            "booster": self.booster_.model_to_string(),
            "best_iteration": self.best_iteration_,
            "feature_names": self.feature_names_,
            "checksums": self.checksums_,
        }

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        import lightgbm as lgb

        self._load_models()
        if self.checksums_ != list(state["checksums"]):
            raise ModelFileError(
                f"boost: its base or a scorer ({', '.join((self.config.base, *self.config.scorers))}) "
                "was retrained or replaced since the booster was trained (weights checksum "
                "differs); retrain boost on the current models"
            )
        if "rep" in self.config.features:
            self.post_pca_ = PCA(arrays["post_pca_mean"], arrays["post_pca_components"])
            self.tag_pc_ = PCA(arrays["tag_pca_mean"], arrays["tag_pca_components"])
        self.booster_ = lgb.Booster(model_str=state["booster"])
        self.best_iteration_ = int(state["best_iteration"])
        self.feature_names_ = list(state["feature_names"])


# ---------------------------------------------------------------------------- feature importance


def importance(model: Boost) -> list[tuple[str, float]]:
    """Features by total split gain over the kept trees, as shares summing to 1, largest first."""
    gain = model.booster_.feature_importance("gain", iteration=model.best_iteration_)
    total = float(gain.sum()) or 1.0
    return sorted(zip(model.feature_names_, (g / total for g in gain)), key=lambda kv: -kv[1])


def format_importance(rows: Sequence[tuple[str, float]]) -> str:
    """A two-column text table: feature, share of gain."""
    return "\n".join(["feature\tgain share"] + [f"{name}\t{share:.4f}" for name, share in rows])


def plot_importance(model: Boost, path: str | Path, top: int = 25, title: str = "") -> None:
    """A horizontal bar chart (PNG) of the `top` features by gain share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = importance(model)[:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(rows) + 1.2))
    ax.barh([r[0] for r in rows], [r[1] for r in rows], color="#4c72b0")
    ax.set_xlabel("share of total split gain")
    ax.set_title(title or f"boost on {Path(model.config.base).name}: feature importance")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
