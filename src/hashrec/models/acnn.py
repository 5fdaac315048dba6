"""The attention-based CNN recommender of Gong & Zhang (IJCAI 2016; docs/paper.md §5): training and persistence.

The network and its equations are in acnn_net.py, its CPU inference engine in acnn_fast.py. This
module holds the `ACNN` recommender: word2vec initialisation (cached), the training loop with the
paper's best-dev-epoch selection, resumable checkpoints, and inference through `ACNNNet.infer`.

One class serves Table 1: `channels=("global", "local")` is CNN+Attention (`acnn`), `("global",)`
the CNN and `("local",)` Attention alone.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hashrec import distributed
from hashrec.errors import ConfigError
from hashrec.metrics import evaluate_ranked
from hashrec.models.acnn_net import ACNNConfig, ACNNNet, pad
from hashrec.models.base import Dev, Docs, Recommender, Tags, check_texts
from hashrec.store import atomic_open
from hashrec.tokens import Vocab, cache_dir, docs_key, tokenize_many

CHECKPOINT = "last.pt"


# ---------------------------------------------------------------------------- training data


def _hash_seed(text: str) -> int:
    """gensim's per-word seeding hash; Python's own `hash` of a str changes from run to run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:4], "little")


def word2vec(docs: Docs, vocab: Vocab, cfg: ACNNConfig) -> np.ndarray:
    """(len(vocab), dim) skip-gram vectors trained on `docs`, cached by content under cache_dir()/w2v/.

    Rows follow the vocabulary: <pad> is zero, <unk> the mean vector. One worker thread so that
    the same docs and seed give the same vectors (gensim's threads race).
    """
    key = docs_key(f"w2v-1 {cfg.dim} {cfg.w2v_epochs} {cfg.seed} {cfg.min_count}\n", docs, "\x1f".join(vocab.itos))
    path = cache_dir() / "w2v" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    from gensim.models import Word2Vec

    w2v = Word2Vec(
        docs,
        vector_size=cfg.dim,
        window=5,
        min_count=cfg.min_count,
        sg=1,
        workers=1,
        epochs=cfg.w2v_epochs,
        seed=cfg.seed,
        hashfxn=_hash_seed,
    )
    out = np.zeros((len(vocab), cfg.dim), dtype=np.float32)
    for i, word in enumerate(vocab.itos[2:], start=2):
        out[i] = w2v.wv[word]
    out[1] = out[2:].mean(0) if len(vocab) > 2 else 0.0
    with atomic_open(path, "wb") as f:
        np.save(f, out)
    return out


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Mini-batches of posts of similar length (less padding), in random order; random within a length."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# ---------------------------------------------------------------------------- the recommender


class ACNN(Recommender):
    """Attention-based CNN hashtag recommender (Gong & Zhang 2016); `acnn`, `cnn`, `attention` in the registry.

    Attributes: `vocab_` (Vocab of the training words), `net_` (the trained `ACNNNet` module),
    `history_` (per-epoch train loss and dev F1@1).
    """

    name = "acnn"
    Config = ACNNConfig
    NAMES = {("global", "local"): "acnn", ("global",): "cnn", ("local",): "attention"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        # the registry name of this configuration, for messages and model.json (all load as ACNN)
        self.name = self.NAMES.get(tuple(sorted(self.config.channels)), "acnn")

    @property
    def supports_explain(self) -> bool:  # type: ignore[override]
        return "local" in self.config.channels

    # ------------------------------------------------------------------ training

    def encode(self, docs: Docs) -> list[list[int]]:
        """Word ids, cut to max_len; an empty post becomes one <unk> so every post has a word."""
        return [self.vocab_.encode(d[: self.config.max_len]) or [1] for d in docs]

    def _fit(self, docs: Docs, tags: Tags, dev: Dev | None) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        device = distributed.setup()  # CUDA when present; under torchrun, this process's share
        # 1. data: word ids and label ids. The softmax covers the labels seen >= min_label_count
        # times (labels_ is sorted by count, so they are its head): a hashtag seen once is rarely
        # ranked first, and the output layer's cost is linear in its size (tweeteval: 49,792
        # hashtags, 10,509 seen twice). Posts left without a label teach nothing.
        self.vocab_ = Vocab.build(docs, min_count=cfg.min_count)
        n_out = max(1, int((self.label_counts_ >= cfg.min_label_count).sum()))
        ids = self.encode(docs)
        labels = [[j for j in ls if j < n_out] for ls in self.label_ids(tags)]
        keep = [i for i, ls in enumerate(labels) if ls]
        ids, labels = [ids[i] for i in keep], [labels[i] for i in keep]
        lengths = np.array([len(r) for r in ids])
        # 2. model, optimizer
        self.net_ = ACNNNet(len(self.vocab_), n_out, cfg)
        with torch.no_grad():
            if cfg.embeddings == "word2vec":
                # Kim 2014 drew random vectors with the pretrained ones' variance; hashrec scales
                # wider pretrained ones down to the random init's instead, because wide inputs
                # saturate the tanh filters and the first epochs learn more slowly (docs/paper.md
                # §11). Narrower vectors (a tiny corpus) are kept as they are: only scaling down
                # was measured.
                vectors = word2vec(docs, self.vocab_, cfg)
                spread = float(vectors[2:].std()) if len(vectors) > 2 else 0.0
                if 0 < cfg.w2v_std < spread:
                    vectors *= cfg.w2v_std / spread
                self.net_.embed.weight.copy_(torch.from_numpy(vectors))
            else:  # Kim 2014: U(-0.25, 0.25), about word2vec's per-dimension spread
                nn.init.uniform_(self.net_.embed.weight, -0.25, 0.25)
                self.net_.embed.weight[0] = 0
            # the softmax starts at the popularity floor: bias = log prior of each hashtag. With
            # default init it takes hundreds of steps just to learn the prior
            counts = np.bincount([j for ls in labels for j in ls], minlength=n_out) + 1.0
            self.net_.out.bias.copy_(torch.from_numpy(np.log(counts / counts.sum())))
        self.net_.embed.weight.requires_grad_(not cfg.static_embeddings)
        self.net_.to(device)
        train_net = distributed.wrap(self.net_)  # DDP under torchrun, else the net itself
        params = [p for p in self.net_.parameters() if p.requires_grad]
        opt = (
            torch.optim.Adam(params, lr=cfg.lr, fused=True) if cfg.optimizer == "adam" else torch.optim.Adadelta(params)
        )  # AdaDelta: its own lr 1.0, as in Kim 2014
        # 3. resume from the last epoch's checkpoint, if asked
        start, best, best_state, stale = 0, -1.0, None, 0
        self.history_: list[dict[str, float]] = []
        ckpt_path = Path(self.checkpoint_dir) / CHECKPOINT if getattr(self, "checkpoint_dir", None) else None
        if getattr(self, "resume", False) and ckpt_path is not None and ckpt_path.is_file():
            start, best, best_state, stale = self._restore(ckpt_path, opt)
        # 4. epochs; keep the weights of the best dev epoch
        from tqdm import tqdm

        began = time.perf_counter()
        for epoch in range(start, cfg.epochs):
            if stale >= cfg.patience:
                break
            self.net_.train()
            batches = distributed.shard(
                bucketed_batches(lengths, cfg.batch_size, np.random.default_rng([cfg.seed, epoch]))
            )
            bar = tqdm(
                batches,
                desc=f"{self.name} epoch {epoch + 1}/{cfg.epochs}",
                leave=False,
                disable=None if distributed.is_main() else True,
                mininterval=2.0,
            )
            total = 0.0
            for n, b in enumerate(bar, 1):
                x = pad([ids[i] for i in b]).to(device)
                y = pad([labels[i] for i in b], value=-1).to(device)
                _, loss = train_net(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.clip)
                opt.step()
                total += loss.item()
                if n % 20 == 0:
                    bar.set_postfix(loss=f"{total / n:.3f}", best_dev_f1=f"{best:.4f}")
            score = self._dev_f1(dev) if dev is not None else None  # no dev: keep the last epoch
            self.history_.append({"epoch": epoch + 1, "loss": total / len(batches), "dev_f1@1": score})
            if distributed.is_main():  # one line an epoch, on a terminal or in a log
                took = (time.perf_counter() - began) / (epoch + 1 - start)
                tqdm.write(
                    f"{self.name} epoch {epoch + 1}/{cfg.epochs}: loss {total / len(batches):.4f} "
                    f"dev F1@1 {score}, {took:.0f} s an epoch, at most {took * (cfg.epochs - epoch - 1):.0f} s "
                    "left",
                    file=sys.stderr,
                )
            if score is None or score > best:
                best, stale = (score if score is not None else best), 0
                best_state = copy.deepcopy(self.net_.state_dict())
            else:
                stale += 1
            if ckpt_path is not None and distributed.is_main():
                self._checkpoint(ckpt_path, opt, epoch + 1, best, best_state, stale)
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        self.net_.for_inference()
        self.trained_on_ = {"epochs_run": len(self.history_) + start, "best_dev_f1@1": best, "history": self.history_}

    def _dev_f1(self, dev: Dev) -> float:
        ranked = self.rank_docs(dev.docs, 1)
        return evaluate_ranked(dev.tags, [[t for t, _ in r] for r in ranked], ks=(1,))[1].f1

    def _checkpoint(
        self, path: Path, opt: torch.optim.Optimizer, epoch: int, best: float, best_state: dict | None, stale: int
    ) -> None:
        """torch.save through store.atomic_open (a temporary sibling, then os.replace): a kill never
        leaves half a checkpoint."""
        state = {
            "model": self.net_.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "best": best,
            "best_state": best_state,
            "stale": stale,
            "history": self.history_,
            "torch_rng": torch.get_rng_state(),
            "config": dataclasses.asdict(self.config),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        with atomic_open(path, "wb") as f:
            torch.save(state, f)

    def _restore(self, path: Path, opt: torch.optim.Optimizer) -> tuple[int, float, dict | None, int]:
        state = torch.load(path, weights_only=True, map_location=next(self.net_.parameters()).device)
        mine = dataclasses.asdict(self.config)
        if {k: list(v) if isinstance(v, tuple) else v for k, v in state["config"].items()} != {
            k: list(v) if isinstance(v, tuple) else v for k, v in mine.items()
        }:
            raise ConfigError(
                f"{path} was written by a training run with another config; train "
                "without --resume, or remove the checkpoint directory"
            )
        self.net_.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history_ = list(state["history"])
        return state["epoch"], state["best"], state["best_state"], state["stale"]

    # ------------------------------------------------------------------ inference

    def _batches(self, docs: Docs) -> Iterator[tuple[slice, list[list[int]], torch.device]]:
        """(positions, word-id rows, the model's device) for batches of at most 256 posts, in eval mode."""
        if self.net_.training:  # eval() walks every module: a tenth of a one-post call (cProfile)
            self.net_.eval()
        device = next(self.net_.parameters()).device
        ids = self.encode(docs)
        for start in range(0, len(ids), 256):
            yield slice(start, start + 256), ids[start : start + 256], device

    def _top_k(self, docs: Docs, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the softmax taken on the logits: no (posts, labels) probability matrix is built.

        p_j = exp(z_j - logsumexp(z)) for the k best logits z_j only. Hashtags outside the
        softmax (min_label_count) score 0 and come after the others when k exceeds it.
        """
        n_out = self.net_.out.out_features
        kk = min(k, n_out)
        idx = np.zeros((len(docs), kk), dtype=np.int64)
        vals = np.zeros((len(docs), kk), dtype=np.float64)
        with torch.inference_mode():
            for pos, rows, device in self._batches(docs):
                z = self.net_.out(self.net_.infer(rows, device))
                top, i = self.net_.top_k(z, kk)
                # log sum_j exp(z_j) around the best logit, which topk has already found (logsumexp
                # would look for the max again); exp_ in place: z is not needed after this
                lse = top[:, :1] + z.sub_(top[:, :1]).exp_().sum(1, keepdim=True).log()
                idx[pos], vals[pos] = i.cpu().numpy(), (top - lse).exp().cpu().numpy()
        rest = min(k, len(self.labels_)) - kk  # labels outside the softmax, in training-frequency order
        if rest > 0:
            idx = np.hstack([idx, np.broadcast_to(np.arange(n_out, n_out + rest), (len(docs), rest))])
            vals = np.hstack([vals, np.zeros((len(docs), rest))])
        return idx, vals

    def represent(self, docs: Docs) -> tuple[np.ndarray, np.ndarray]:
        """p(hashtag | post) (n, n_labels) and the combined layer (n, hidden), from one forward pass.

        The softmax is the paper's (§3.3); hashtags outside it (min_label_count) get 0. The combined
        layer is the feature vector boost's "rep" group reads.
        """
        ps, hs = [], []
        with torch.inference_mode():
            for _, rows, device in self._batches(docs):
                hidden = self.net_.infer(rows, device)
                ps.append(F.softmax(self.net_.out(hidden), 1).float().cpu().numpy())
                hs.append(hidden.float().cpu().numpy())
        p = np.concatenate(ps)
        return np.pad(p, ((0, 0), (0, len(self.labels_) - p.shape[1]))), np.concatenate(hs)

    def hidden(self, docs: Docs) -> np.ndarray:
        """The combined layer alone (n, hidden), float32: the network as a feature extractor (hknn's space), without
        represent's (n, n_labels) probabilities (weibo's 100k training posts: 7.6 GB of them)."""
        out = np.empty((len(docs), self.net_.combine.out_features), dtype=np.float32)
        with torch.inference_mode():
            for pos, rows, device in self._batches(docs):
                out[pos] = self.net_.infer(rows, device).float().cpu().numpy()
        return out

    def _scores(self, docs: Docs) -> np.ndarray:
        return self.represent(docs)[0]

    def explain(self, texts: str | list[str]) -> list[list[tuple[str, float]]]:
        """Per text, the trigger words the local attention kept and their weights a_i, heaviest first."""
        if not self.supports_explain:
            return super().explain(texts)
        self._check_fitted()
        texts = check_texts(texts)
        docs = [d[: self.config.max_len] for d in tokenize_many(texts)]
        out: list[list[tuple[str, float]]] = []
        with torch.inference_mode():
            weights = [a for _, rows, device in self._batches(docs) for a in self.net_.trigger_weights(rows, device)]
        for doc, a in zip(docs, weights):
            kept = [(word, float(a[i])) for i, word in enumerate(doc) if a[i] > 0]
            out.append(sorted(kept, key=lambda kv: -kv[1]))
        return out

    # ------------------------------------------------------------------ persistence

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {k: v.detach().cpu().contiguous().numpy() for k, v in self.net_.state_dict().items()}
        return arrays, {"vocab": self.vocab_.itos}

    def _set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        self.vocab_ = Vocab(list(state["vocab"]))
        self.net_ = ACNNNet(len(self.vocab_), len(arrays["out.bias"]), self.config)
        self.net_.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        self.net_.for_inference()
