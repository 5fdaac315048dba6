"""The attention-based CNN of Gong & Zhang (IJCAI 2016, Figure 1; PAPER.md §2), and its ablations.

Two channels read the word embeddings w_1..w_n of a post:
- `LocalAttention` scores every word with a window of h words, keeps the trigger words above a
  per-post threshold eta and folds them into h_l;
- `GlobalConv` is Kim's (2014) CNN: windows l in {1, 2, 3}, max-over-time pooling, giving h_g;
then `h = tanh(M [h_g; h_l] + b)` and a softmax over the training hashtags.

One class serves Table 1: `channels=("global", "local")` is CNN+Attention (`acnn`), `("global",)`
the CNN and `("local",)` Attention alone. Where the paper is silent (PAPER.md §2 "Not given") the
choice is made in `ACNNConfig` with a why-comment; docs/results/acnn.md holds the measurements.

References: Gong & Zhang 2016, "Hashtag Recommendation using Attention-based Convolutional
Neural Network"; Kim 2014, "Convolutional Neural Networks for Sentence Classification".
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hashrec import distributed
from hashrec.config import check
from hashrec.errors import ConfigError
from hashrec.metrics import evaluate_ranked
from hashrec.models.base import Dev, Docs, Recommender, Tags, check_texts
from hashrec.store import atomic_open
from hashrec.tokens import Vocab, cache_dir, tokenize_many

CHECKPOINT = "last.pt"
TABLE_BYTES = 1 << 30  # inference tables past this (1.1M words at the default sizes) are not built


@dataclass(frozen=True)
class ACNNConfig:
    channels: tuple[str, ...] = ("global", "local")  # PAPER §2 CNN+Attention; ablations drop one
    dim: int = 100  # PAPER §2 word2vec size
    windows: tuple[int, ...] = (1, 2, 3)  # PAPER §2 global windows
    n_maps: int = 100  # PAPER §2 feature maps per window
    h: int = 5  # PAPER §2 attention window (odd: centred on the word)
    delta: float = 0.8  # PAPER §2 threshold mix
    attention: Literal["soft", "hard"] = "soft"  # hard = the paper's literal 0/1 mask (no gradient to M_a)
    local_dim: int = 100  # size of h_l; not given, = the word size so folding -> h_l is square
    hidden: int = 200  # size of h (combining filters); not given, = |h_g| / 1.5, see docs/results/acnn.md
    dropout: float = 0.5  # on [h_g; h_l] before combining (Kim 2014's place and rate); not in the paper
    # PAPER §2 "pairs": one (post, hashtag) pair per hashtag; "soft" (uniform over the post's
    # hashtags) measured better on dev (weibo-20k, 2 epochs: 0.067 vs 0.060), so it is the default
    target: Literal["pairs", "soft"] = "soft"
    embeddings: Literal["word2vec", "random"] = "word2vec"  # PAPER §2 pretrained on the train posts
    static_embeddings: bool = False  # PAPER §2 Table 2: True keeps the word vectors frozen
    w2v_epochs: int = 5  # gensim's default
    # word2vec vectors wider than this std (the random init's, U(-0.25, 0.25)) are scaled down to
    # it; 0 keeps gensim's own scale (0.23 on Weibo, 0.16 on tweeteval). See _fit
    w2v_std: float = 0.25 / 3 ** 0.5
    min_count: int = 5  # rarer words get <unk>; word2vec's own default. Weibo: 34k words, not 141k
    min_label_count: int = 2  # softmax over hashtags seen this often; rarer ones score 0 (see _fit)
    max_len: int = 100  # tokens kept per post (the head): all of 94% of Weibo posts, 86% of tokens
    batch_size: int = 200  # PAPER §2
    optimizer: Literal["adam", "adadelta"] = "adam"  # PAPER §2 AdaDelta; Adam measured better per epoch
    lr: float = 5e-3  # Adam; 1e-3 learns too slowly for a few epochs, 1e-2 cnn fine/acnn diverged (docs)
    clip: float = 5.0  # max gradient norm per step, a guard against the divergence seen at lr 1e-2
    epochs: int = 10
    patience: int = 3  # stop after this many epochs without a better dev F1@1
    seed: int = 0

    def __post_init__(self) -> None:
        check(len(self.channels) > 0 and set(self.channels) <= {"global", "local"}
              and len(set(self.channels)) == len(self.channels),
              f"channels must be a non-empty subset of ('global', 'local'), got {self.channels!r}")
        check(len(self.windows) > 0 and all(w >= 1 for w in self.windows),
              f"windows must be positive window sizes, e.g. (1, 2, 3), got {self.windows!r}")
        check(self.h >= 1 and self.h % 2 == 1, f"h (attention window) must be odd and >= 1 so it "
              f"centres on the word, got {self.h}")
        check(0.0 <= self.delta <= 1.0, f"delta must be in [0, 1], got {self.delta}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("dim", "n_maps", "local_dim", "hidden", "min_count", "min_label_count", "max_len", "batch_size",
                     "epochs", "patience", "w2v_epochs"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.w2v_std >= 0, f"w2v_std must be >= 0 (0 keeps gensim's scale), got {self.w2v_std}")
        check(self.lr > 0 and self.clip > 0, f"lr and clip must be > 0, got {self.lr}, {self.clip}")


# ---------------------------------------------------------------------------- the network


class WindowLinear(nn.Linear):
    """A linear layer over windows of `size` words: M . [w_t; ...; w_{t+size-1}] + b (Kim 2014's filter).

    Its weight M is (out, size * d) with word j of a window at column c * size + j, so M splits
    into blocks M_0 .. M_{size-1}, one per position in the window, and the window's value is
    sum_j M_j . w_{t+j}. `forward` is the layer on every window of a post after `left`/`right`
    zero pads; the network takes `window_sums` (no bias) in one of two ways:

    - training: `products` y_i,j = M_j . w_i for each word (one matrix product), then
      `window_sums` adds y_{t+j-left, j} over j. Pads contribute nothing, so neither the windows
      (B, T', size * d) nor the padded words are ever copied: unfolding the windows cost a third of
      inference (docs/PERFORMANCE.md); Conv1d is several times slower on the CPU.
    - inference: M_j . w_i depends on the word only, so `table_sums` adds rows of a table of
      M_j . E_v over the vocabulary (`table`) with an embedding bag, one sum per window.
    """

    def __init__(self, dim: int, n_out: int, size: int, left: int, right: int) -> None:
        super().__init__(size * dim, n_out)  # keys and shapes of the nn.Linear it replaced: old models load
        self.size, self.left, self.right = size, left, right

    def blocks(self) -> torch.Tensor:
        """[M_0 | M_1 | ...], (d, size * out)."""
        return self.weight.view(self.out_features, -1, self.size).permute(1, 2, 0).reshape(-1, self.size * self.out_features)

    def products(self, w: torch.Tensor) -> torch.Tensor:
        """y (B, T, size, out), y[:, i, j] = M_j . w_i, for words `w` (B, T, d)."""
        return (w @ self.blocks()).view(*w.shape[:2], self.size, self.out_features)

    def window_sums(self, y: torch.Tensor) -> torch.Tensor:
        """(B, T + left + right - size + 1, out): M . (window t), bias not added, from products `y`."""
        return _WindowSums.apply(y, self.left, y.size(1) + self.left + self.right - y.size(2) + 1)

    def table(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(V * size, out): row v * size + j is M_j . E_v, for the embedding matrix E (V, d)."""
        return (embeddings @ self.blocks()).view(-1, self.out_features)

    def table_sums(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """`window_sums` for word ids `x` (B, T) from `table`: word 0 (padding, a zero vector) stands for the pads."""
        windows = F.pad(x, (self.left, self.right)).unfold(1, self.size, 1)  # (B, T', size) word ids
        rows = windows * self.size + torch.arange(self.size, device=x.device)
        return F.embedding_bag(rows.reshape(-1, self.size), table, mode="sum").view(*windows.shape[:2], -1)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.window_sums(self.products(w)) + self.bias


def _offsets(words: int, windows: int, size: int, left: int) -> Iterator[tuple[int, slice, slice]]:
    """(j, windows t, words t + j - left) for each offset j in a window that some window fills with a word."""
    for j in range(size):
        lo, hi = max(0, left - j), min(windows, words + left - j)
        if lo < hi:  # else no window has a word at offset j (a post shorter than the pads)
            yield j, slice(lo, hi), slice(lo + j - left, hi + j - left)


class _WindowSums(torch.autograd.Function):
    """z[:, t] = sum_j y[:, t + j - left, j] for products y (B, T, size, out), and its gradient.

    The same sums as autograd through in-place slice additions into a zero tensor, but that
    backward copies the whole gradient once per slice: with its fills and additions, about 30% of a
    training step (profiled, docs/PERFORMANCE.md).
    Here the backward is one slice copy per offset.
    """

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, left: int, windows: int) -> torch.Tensor:
        b, t, size, n_out = y.shape
        ctx.shape, ctx.left = y.shape, left
        z = y.new_zeros(b, windows, n_out)
        for j, at, words in _offsets(t, windows, size, left):
            z[:, at] += y[:, words, j]
        return z

    @staticmethod
    def backward(ctx: Any, gz: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        gy = gz.new_zeros(ctx.shape)
        for j, at, words in _offsets(ctx.shape[1], gz.size(1), ctx.shape[2], ctx.left):
            gy[:, words, j] = gz[:, at]
        return gy, None, None


class LocalAttention(nn.Module):
    """The local attention channel (paper §3.1): trigger words folded into h_l.

    s_i = tanh(M_a . w_{i-(h-1)/2 : i+(h-1)/2} + b)       one filter: a scalar per word
    eta = delta * min(s) + (1 - delta) * max(s)           over the post's real words only
    folding = sum_i a_i w_i / sum_i a_i,  h_l = tanh(M_l . folding + b)

    Hard (the paper): a_i = 1 if s_i >= eta else 0. This gives M_a no gradient at all.
    Soft (hashrec's default): a_i = clamp((s_i - eta) / (max(s) - eta), 0, 1), the same words kept
    (a_i > 0 exactly when s_i > eta), weighted linearly from 0 at the threshold to 1 at the top
    word, and M_a learns through s_i and eta.

    Departure: the paper's folding is the plain sum; hashrec divides it by sum_i a_i (a weighted
    mean of the trigger words) so that h_l does not grow with the post's length. With the sum,
    acnn diverged at lr 1e-2 on Weibo (loss 8.10 then 8.27 while the CNN alone fell to 6.91). ">=" rather than the paper's ">" only matters when all scores tie
    (a one-word post): then eta = max(s) and every word is kept with weight 1 rather than none.
    """

    def __init__(self, dim: int, h: int, delta: float, out_dim: int, hard: bool) -> None:
        super().__init__()
        self.delta, self.hard = delta, hard
        half = (h - 1) // 2  # zero vectors as the begin/end tokens
        self.score = WindowLinear(dim, 1, h, half, half)  # M_a, b: one filter over the h-word window
        self.fold = nn.Linear(dim, out_dim)

    def weights(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """a_i per word, (B, T); 0 at padding. `z` (B, T, 1) the score filter's window sums, `mask` (B, T) real words."""
        s = torch.tanh(z.squeeze(2) + self.score.bias)  # (B, T)
        s_max = s.masked_fill(~mask, -2.0).amax(1, keepdim=True)  # tanh is in (-1, 1): pads never win
        s_min = s.masked_fill(~mask, 2.0).amin(1, keepdim=True)
        return self.a(s, s_min, s_max) * mask

    def packed_weights(self, z: torch.Tensor, batch: Packed) -> torch.Tensor:
        """`weights` for a `Packed` batch, (words,): `z` (1, windows, 1) the score filter's sums over its row.

        The filter's window centred on a word is the one numbered as the word's place in the row.
        """
        s = torch.tanh(z[0, batch.at, 0] + self.score.bias)
        s_max = s.new_full((batch.size,), -2.0).scatter_reduce_(0, batch.post, s, "amax")[batch.post]
        s_min = s.new_full((batch.size,), 2.0).scatter_reduce_(0, batch.post, s, "amin")[batch.post]
        return self.a(s, s_min, s_max)

    def a(self, s: torch.Tensor, s_min: torch.Tensor, s_max: torch.Tensor) -> torch.Tensor:
        """a_i from scores s_i and their post's min and max (broadcast to s)."""
        # rounding can put delta*s + (1-delta)*s a hair above s when all scores tie, which
        # would keep no word at all (a 0/0 folding, NaN loss in hard mode): eta never exceeds max(s)
        eta = torch.minimum(self.delta * s_min + (1 - self.delta) * s_max, s_max)
        if self.hard:
            return (s >= eta).float()
        span = s_max - eta
        return torch.where(span > 0, ((s - eta) / span.clamp_min(1e-12)).clamp(0, 1), torch.ones_like(s))

    def forward(self, z: torch.Tensor, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a = self.weights(z, mask)  # (B, T)
        folding = torch.einsum("bt,btd->bd", a, w) / a.sum(1, keepdim=True)  # (B, d); sum a >= 1
        return torch.tanh(self.fold(folding))

    def packed(self, z: torch.Tensor, batch: Packed, embed: nn.Embedding) -> torch.Tensor:
        """`forward` for a `Packed` batch: the folding as an embedding bag weighted by a_i."""
        a = self.packed_weights(z, batch)
        total = a.new_zeros(batch.size).index_add_(0, batch.post, a)
        folding = F.embedding_bag(batch.ids, embed.weight, batch.starts, mode="sum", per_sample_weights=a)
        return torch.tanh(self.fold(folding / total[:, None]))


class GlobalConv(nn.Module):
    """The global channel (paper §3.2, Kim 2014): h_g = [tanh(max_t (M_l . w_{t:t+l-1}) + b)] per window l.

    Each window size runs as a wide convolution (l - 1 zero pads each side) so that a post
    shorter than l still has windows; positions whose window lies wholly in the batch padding
    are masked out of the max. tanh is monotone and b is the same at every position, so adding
    b and tanh after the max equals z_i = tanh(M w + b) before it (the paper's order).
    """

    def __init__(self, dim: int, sizes: tuple[int, ...], n_maps: int) -> None:
        super().__init__()
        self.maps = nn.ModuleList(WindowLinear(dim, n_maps, l, l - 1, l - 1) for l in sizes)  # M_g, b per window size

    def forward(self, zs: list[torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        """`zs` each map's window sums (B, T + l - 1, maps), `lengths` (B,) real words per post."""
        maxima = []
        shortest = int(lengths.min())  # windows before the shortest post's end are never masked
        for m, z in zip(self.maps, zs):
            start = shortest + m.size - 1
            past = torch.arange(start, z.size(1), device=z.device)[None, :] >= (lengths + m.size - 1)[:, None]
            # adding -inf over a broadcast (B, T', 1) is 10x faster than masked_fill_ with one
            z[:, start:] += torch.where(past, float("-inf"), 0.0)[:, :, None]
            maxima.append(z.amax(1))
        return self.h_g(maxima)

    def packed(self, zs: list[torch.Tensor], batch: Packed) -> torch.Tensor:
        """`forward` for a `Packed` batch: `zs` each map's window sums over the batch's row (1, windows, maps)."""
        maxima = []
        for m, z in zip(self.maps, zs):
            z = z[0]
            owners = batch.owners(m.size)[:, None].expand_as(z)  # windows of no post go to row B
            maxima.append(z.new_full((batch.size + 1, z.size(1)), float("-inf"))
                          .scatter_reduce_(0, owners, z, "amax")[:-1])
        return self.h_g(maxima)

    def h_g(self, maxima: list[torch.Tensor]) -> torch.Tensor:
        """tanh(max + b) per window size, concatenated: (B, maps * len(sizes))."""
        return torch.tanh(torch.cat([mx + m.bias for m, mx in zip(self.maps, maxima)], 1))


class ACNNNet(nn.Module):
    """Embeddings -> global and/or local channel -> h = tanh(M [h_g; h_l] + b) -> hashtag logits."""

    def __init__(self, n_words: int, n_labels: int, cfg: ACNNConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_words, cfg.dim, padding_idx=0)
        self.local = (LocalAttention(cfg.dim, cfg.h, cfg.delta, cfg.local_dim, cfg.attention == "hard")
                      if "local" in cfg.channels else None)
        self.glob = GlobalConv(cfg.dim, cfg.windows, cfg.n_maps) if "global" in cfg.channels else None
        width = (cfg.n_maps * len(cfg.windows) if self.glob else 0) + (cfg.local_dim if self.local else 0)
        self.drop = nn.Dropout(cfg.dropout)
        self.combine = nn.Linear(width, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, n_labels)
        self.target = cfg.target
        self._tables: tuple[tuple, list[torch.Tensor]] | None = None  # see window_sums

    def train(self, mode: bool = True) -> "ACNNNet":
        # the tables of window_sums are dropped whenever the mode changes: an optimizer may change
        # the weights without bumping their version (fused Adam does not), but only in training
        self._tables = None
        return super().train(mode)

    def for_inference(self) -> ACNNNet:
        """Eval mode, with each dense layer's W stored transposed (column-major): the same values, but
        the CPU multiplies 4 to 24 posts' rows by the output layer's W^T 1.3-2.2x faster that way
        (docs/PERFORMANCE-serve.md, ninth session). Training works on either layout. Idempotent."""
        for layer in (self.combine, self.out, *([self.local.fold] if self.local else [])):
            layer.weight.data = layer.weight.data.t().contiguous().t()
        return self.eval()

    def windowed(self) -> list[WindowLinear]:
        """The layers over word windows: the global maps, then the attention's score filter."""
        return [*(self.glob.maps if self.glob else []), *([self.local.score] if self.local else [])]

    @property
    def gap(self) -> int:
        """Zero ids between the posts of a `Packed` batch: the windowed layers' widest pad."""
        return max(m.left for m in self.windowed())

    def window_sums(self, x: torch.Tensor, w: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every windowed layer's `WindowLinear.window_sums` for word ids `x` (B, T), embeddings `w` (`embed(x)` if None).

        Inference (no gradient, eval mode) reads them from tables of M_j . E_v (`WindowLinear.table`),
        built once per set of weights (rebuilt after `train()` or an in-place change): the sum
        of `size` table rows per window instead of a (d x size * out) product per word, the same
        numbers up to rounding, 2-4x faster. Weibo: 34k words, tables of 82 MB in all; a vocabulary
        whose tables would pass TABLE_BYTES keeps the products. Not in the paper; an inference
        shortcut only.
        """
        layers = self.windowed()
        table_bytes = self.embed.num_embeddings * sum(m.size * m.out_features for m in layers) \
            * self.embed.weight.element_size()
        if self.training or torch.is_grad_enabled() or table_bytes > TABLE_BYTES:
            w = self.embed(x) if w is None else w
            return [m.window_sums(m.products(w)) for m in layers]
        key = tuple((p.data_ptr(), p._version) for p in (self.embed.weight, *(m.weight for m in layers)))
        if self._tables is None or self._tables[0] != key:
            self._tables = key, [m.table(self.embed.weight) for m in layers]
        return [m.table_sums(x, t) for m, t in zip(layers, self._tables[1])]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h, the combined layer (B, hidden): the input of the softmax. `x` (B, T) word ids, 0 = pad."""
        mask = x != 0
        w = self.embed(x)  # (B, T, d)
        zs = self.window_sums(x, w)
        parts = []
        if self.glob is not None:
            parts.append(self.glob(zs[:len(self.glob.maps)], mask.sum(1)))
        if self.local is not None:
            parts.append(self.local(zs[-1], w, mask))
        return self.h(parts)

    def packed_features(self, batch: Packed) -> torch.Tensor:
        """`features` of a `Packed` batch (inference): the same numbers up to rounding, without padding."""
        zs = self.window_sums(batch.row)
        parts = []
        if self.glob is not None:
            parts.append(self.glob.packed(zs[:len(self.glob.maps)], batch))
        if self.local is not None:
            parts.append(self.local.packed(zs[-1], batch, self.embed))
        return self.h(parts)

    def h(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """h = tanh(M [h_g; h_l] + b)."""
        return torch.tanh(self.combine(self.drop(torch.cat(parts, 1))))

    def trigger_weights(self, batch: Packed) -> list[np.ndarray]:
        """The local attention's a_i for each post of `batch` (models with the local channel)."""
        a = self.local.packed_weights(self.window_sums(batch.row)[-1], batch).detach().cpu().numpy()
        return np.split(a, np.cumsum(batch.lengths)[:-1])

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, n_labels) and, given `targets` (B, K) label ids padded with -1, the loss.

        "pairs" (paper): J = -sum over (post, hashtag) pairs of log p(hashtag | post), averaged
        over the batch's pairs. "soft": cross entropy against a target spread uniformly over the
        post's hashtags, averaged over posts (a post with many hashtags weighs as much as one with one).
        """
        logits = self.out(self.features(x))
        if targets is None:
            return logits, None
        have = targets >= 0
        logp = F.log_softmax(logits, 1).gather(1, targets.clamp_min(0)) * have  # (B, K)
        if self.target == "pairs":
            loss = -logp.sum() / have.sum()
        else:
            loss = -(logp.sum(1) / have.sum(1).clamp_min(1)).sum() / (have.sum(1) > 0).sum()
        return logits, loss


# ---------------------------------------------------------------------------- data helpers


def _hash_seed(text: str) -> int:
    """gensim's per-word seeding hash; Python's own `hash` of a str changes from run to run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:4], "little")


def word2vec(docs: Docs, vocab: Vocab, cfg: ACNNConfig) -> np.ndarray:
    """(len(vocab), dim) skip-gram vectors trained on `docs`, cached by content under cache_dir()/w2v/.

    Rows follow the vocabulary: <pad> is zero, <unk> the mean vector. One worker thread so that
    the same docs and seed give the same vectors (gensim's threads race).
    """
    h = hashlib.sha256(f"w2v-1 {cfg.dim} {cfg.w2v_epochs} {cfg.seed} {cfg.min_count}\n".encode())
    for d in docs:
        h.update("\x1f".join(d).encode("utf-8", "surrogatepass") + b"\0")
    h.update("\x1f".join(vocab.itos).encode("utf-8", "surrogatepass"))
    path = cache_dir() / "w2v" / f"{h.hexdigest()[:32]}.npy"
    if path.is_file():
        return np.load(path)
    from gensim.models import Word2Vec

    w2v = Word2Vec(docs, vector_size=cfg.dim, window=5, min_count=cfg.min_count, sg=1, workers=1,
                   epochs=cfg.w2v_epochs, seed=cfg.seed, hashfxn=_hash_seed)
    out = np.zeros((len(vocab), cfg.dim), dtype=np.float32)
    for i, word in enumerate(vocab.itos[2:], start=2):
        out[i] = w2v.wv[word]
    out[1] = out[2:].mean(0) if len(vocab) > 2 else 0.0
    with atomic_open(path, "wb") as f:
        np.save(f, out)
    return out


def top_k_rows(z: torch.Tensor, k: int, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """`z.topk(k, dim=1)` (values and indices, best first) for wide rows, in two passes.

    The k best of a row lie in the `chunk`-wide slices holding the k largest slice maxima, so
    one vectorised max per slice and a top-k over the k * chunk candidates replace torch's
    top-k over the whole row (a quarter of inference over 8,257 hashtags; this is 2-3x faster).
    Equal values may come in another order than torch's.
    """
    b, n = z.shape
    if k * chunk * 4 > n:
        return z.topk(k, dim=1)
    m = n - n % chunk
    slices = z[:, :m].view(b, m // chunk, chunk)
    _, best = slices.amax(2).topk(k, dim=1)  # (b, k) slice numbers
    candidates = torch.cat([slices.gather(1, best[:, :, None].expand(b, k, chunk)).view(b, k * chunk), z[:, m:]], 1)
    top, j = candidates.topk(k, dim=1)
    in_slice = j < k * chunk
    where = torch.where(in_slice, best.gather(1, (j // chunk).clamp_max(k - 1)) * chunk + j % chunk, j - k * chunk + m)
    return top, where


def pad(rows: list[list[int]], value: int = 0) -> torch.Tensor:
    """(len(rows), longest) LongTensor, short rows filled with `value`."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), lengths.max()), value, dtype=np.int64)
    out[np.arange(out.shape[1]) < lengths[:, None]] = np.fromiter(itertools.chain.from_iterable(rows), np.int64)
    return torch.from_numpy(out)


@dataclass(frozen=True)
class Packed:
    """Posts of word ids in one row, `gap` zero ids between posts: a batch without padding (inference).

    Padded to its longest post, a batch of Weibo posts holds about three times its real words
    (they run from 1 to 100 words), and every windowed layer and pool works on the padding too.
    In one row, each layer's windows are those of the posts and of the gaps; `gap` at least every
    layer's `left` pads keeps each window within one post and its own pads, and `owners` says whose
    it is. `pack` builds one.
    """

    row: torch.Tensor  # (1, N) word ids: post 0, `gap` zeros, post 1, ...
    ids: torch.Tensor  # (n,) the words, post after post
    post: torch.Tensor  # (n,) each word's post
    at: torch.Tensor  # (n,) each word's place in `row`
    starts: torch.Tensor  # (B,) each post's first word in `ids`
    follows: torch.Tensor  # (N + gap,) the post each place of `row` is in or follows (and `gap` places past its end)
    after: torch.Tensor  # (N + gap,) 0 on a word, j on the j-th place after a post's last word
    lengths: np.ndarray  # (B,) words per post

    @property
    def size(self) -> int:
        return len(self.lengths)

    def owners(self, size: int) -> torch.Tensor:
        """The post of each window of a wide convolution over `row` (`size` - 1 zero pads each side,
        as in `GlobalConv`); `self.size` for none. Window t ends at place t, so it is post i's if
        place t is one of its words or one of the `size` - 1 places after them."""
        n = self.row.size(1) + size - 1
        return torch.where(self.after[:n] < size, self.follows[:n], self.size)


def pack(rows: list[list[int]], gap: int, device: torch.device | str = "cpu") -> Packed:
    """`Packed` batch of non-empty word-id rows."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ids = np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=int(lengths.sum()))
    posts = np.arange(len(rows))
    post = np.repeat(posts, lengths)
    at = np.arange(len(ids)) + gap * post
    row = np.zeros(len(ids) + gap * (len(rows) - 1), dtype=np.int64)
    row[at] = ids
    starts = np.cumsum(lengths) - lengths
    block = lengths + gap  # a post and the places after it
    follows = np.repeat(posts, block)
    after = np.maximum(np.arange(len(follows)) - np.repeat(starts + gap * posts + lengths - 1, block), 0)
    tensors = (torch.from_numpy(v).to(device) for v in (row[None], ids, post, at, starts, follows, after))
    return Packed(*tensors, lengths)


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Mini-batches of posts of similar length (less padding), in random order; random within a length."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
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
        return [self.vocab_.encode(d[:self.config.max_len]) or [1] for d in docs]

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
                # wider pretrained ones down to the random init's instead: on Weibo (seed 0) dev
                # F1@1 after epochs 1-3 is 0.150 / 0.176 / 0.180 scaled, 0.141 / 0.169 / 0.175 at
                # gensim's scale (wide inputs saturate the tanh filters). Narrower vectors (a tiny
                # corpus) are kept as they are: the gain was measured for scaling down only. Not in
                # the paper.
                vectors = word2vec(docs, self.vocab_, cfg)
                spread = float(vectors[2:].std()) if len(vectors) > 2 else 0.0
                if 0 < cfg.w2v_std < spread:
                    vectors *= cfg.w2v_std / spread
                self.net_.embed.weight.copy_(torch.from_numpy(vectors))
            else:  # Kim 2014: U(-0.25, 0.25), about word2vec's per-dimension spread
                nn.init.uniform_(self.net_.embed.weight, -0.25, 0.25)
                self.net_.embed.weight[0] = 0
            # the softmax starts at the popularity floor: bias = log prior of each hashtag. With
            # default init it takes hundreds of steps just to learn the prior (measured on the slice)
            counts = np.bincount([j for ls in labels for j in ls], minlength=n_out) + 1.0
            self.net_.out.bias.copy_(torch.from_numpy(np.log(counts / counts.sum())))
        self.net_.embed.weight.requires_grad_(not cfg.static_embeddings)
        self.net_.to(device)
        train_net = distributed.wrap(self.net_)  # DDP under torchrun, else the net itself
        params = [p for p in self.net_.parameters() if p.requires_grad]
        opt = (torch.optim.Adam(params, lr=cfg.lr, fused=True) if cfg.optimizer == "adam"
               else torch.optim.Adadelta(params))  # AdaDelta: its own lr 1.0, as in Kim 2014
        # 3. resume from the last epoch's checkpoint, if asked
        start, best, best_state, stale = 0, -1.0, None, 0
        self.history_: list[dict[str, float]] = []
        ckpt_path = Path(self.checkpoint_dir) / CHECKPOINT if getattr(self, "checkpoint_dir", None) else None
        if getattr(self, "resume", False) and ckpt_path is not None and ckpt_path.is_file():
            start, best, best_state, stale = self._restore(ckpt_path, opt)
        # 4. epochs; keep the weights of the best dev epoch
        from tqdm import tqdm

        for epoch in range(start, cfg.epochs):
            if stale >= cfg.patience:
                break
            self.net_.train()
            batches = distributed.shard(
                bucketed_batches(lengths, cfg.batch_size, np.random.default_rng([cfg.seed, epoch])))
            bar = tqdm(batches, desc=f"{self.name} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=None if distributed.is_main() else True, mininterval=2.0)
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
            if distributed.is_main():
                tqdm.write(f"{self.name} epoch {epoch + 1}: loss {total / len(batches):.4f} dev F1@1 {score}",
                           file=sys.stderr)
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
        self.trained_on_ = {"epochs_run": len(self.history_) + start, "best_dev_f1@1": best,
                            "history": self.history_}

    def _dev_f1(self, dev: Dev) -> float:
        ranked = self.rank_docs(dev.docs, 1)
        return evaluate_ranked(dev.tags, [[t for t, _ in r] for r in ranked], ks=(1,))[1].f1

    def _checkpoint(self, path: Path, opt: torch.optim.Optimizer, epoch: int, best: float,
                    best_state: dict | None, stale: int) -> None:
        """torch.save to a temporary sibling, then os.replace: a kill never leaves half a checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"model": self.net_.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                 "best": best, "best_state": best_state, "stale": stale, "history": self.history_,
                 "torch_rng": torch.get_rng_state(), "config": dataclasses.asdict(self.config)}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _restore(self, path: Path, opt: torch.optim.Optimizer) -> tuple[int, float, dict | None, int]:
        state = torch.load(path, weights_only=True, map_location=next(self.net_.parameters()).device)
        mine = dataclasses.asdict(self.config)
        if {k: list(v) if isinstance(v, tuple) else v for k, v in state["config"].items()} != \
                {k: list(v) if isinstance(v, tuple) else v for k, v in mine.items()}:
            raise ConfigError(f"{path} was written by a training run with another config; train "
                              "without --resume, or remove the checkpoint directory")
        self.net_.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history_ = list(state["history"])
        return state["epoch"], state["best"], state["best_state"], state["stale"]

    # ------------------------------------------------------------------ inference

    def _batches(self, docs: Docs) -> Iterator[tuple[slice, Packed]]:
        """(positions, `Packed` batch) for batches of at most 256 posts, on the model's device, in eval mode."""
        if self.net_.training:  # eval() walks every module: a tenth of a one-post call (cProfile)
            self.net_.eval()
        device = next(self.net_.parameters()).device
        ids = self.encode(docs)
        for start in range(0, len(ids), 256):
            yield slice(start, start + 256), pack(ids[start:start + 256], self.net_.gap, device)

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
            for pos, batch in self._batches(docs):
                z = self.net_.out(self.net_.packed_features(batch))
                top, i = top_k_rows(z, kk)
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
        """p(hashtag | post) (n, n_labels) and the combined layer h (n, hidden), from one forward pass.

        The softmax is the paper's (§3.3); hashtags outside it (min_label_count) get 0. h is the
        feature vector the talk's boosting idea (PAPER.md §5) reads.
        """
        ps, hs = [], []
        with torch.inference_mode():
            for _, batch in self._batches(docs):
                h = self.net_.packed_features(batch)
                ps.append(F.softmax(self.net_.out(h), 1).float().cpu().numpy())
                hs.append(h.float().cpu().numpy())
        p = np.concatenate(ps)
        return np.pad(p, ((0, 0), (0, len(self.labels_) - p.shape[1]))), np.concatenate(hs)

    def hidden(self, docs: Docs) -> np.ndarray:
        """h alone (n, hidden), float32: the network as a feature extractor (hknn's space), without
        represent's (n, n_labels) probabilities (weibo's 100k training posts: 7.6 GB of them)."""
        out = np.empty((len(docs), self.net_.combine.out_features), dtype=np.float32)
        with torch.inference_mode():
            for pos, batch in self._batches(docs):
                out[pos] = self.net_.packed_features(batch).float().cpu().numpy()
        return out

    def _scores(self, docs: Docs) -> np.ndarray:
        return self.represent(docs)[0]

    def explain(self, texts: str | list[str]) -> list[list[tuple[str, float]]]:
        """Per text, the trigger words the local attention kept and their weights a_i, heaviest first."""
        if not self.supports_explain:
            return super().explain(texts)
        self._check_fitted()
        texts = check_texts(texts)
        docs = [d[:self.config.max_len] for d in tokenize_many(texts)]
        out: list[list[tuple[str, float]]] = []
        with torch.inference_mode():
            weights = [a for _, batch in self._batches(docs) for a in self.net_.trigger_weights(batch)]
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
