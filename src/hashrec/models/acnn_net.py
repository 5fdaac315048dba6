"""The attention-based CNN of Gong & Zhang (IJCAI 2016, Figure 1; docs/paper.md §2-§5), and its ablations.

Two channels read the word embeddings w_1..w_n of a post:
- `LocalAttention` scores every word with a window of h words, keeps the trigger words above a
  per-post threshold eta and folds them into h_l;
- `GlobalConv` is Kim's (2014) CNN: windows l in {1, 2, 3}, max-over-time pooling, giving h_g;
then the combined layer `hidden = tanh(M [h_g; h_l] + b)` and a softmax over the training hashtags.
(`h` in the config is the paper's attention window only.)

Each block's `forward` is the plain math on padded batches; `ACNNNet.fast` switches to the CPU
inference engine of acnn_fast.py, which computes the same numbers faster.

One class serves Table 1: `channels=("global", "local")` is CNN+Attention (`acnn`), `("global",)`
the CNN and `("local",)` Attention alone. Where the paper is silent (docs/paper.md §5) the
choice is made in `ACNNConfig` with a why-comment; docs/paper.md §11 lists the departures and
docs/results/acnn.md holds the measurements.

References: Gong & Zhang 2016, "Hashtag Recommendation using Attention-based Convolutional
Neural Network"; Kim 2014, "Convolutional Neural Networks for Sentence Classification".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hashrec.config import check
from hashrec.models import acnn_fast as fast


@dataclass(frozen=True)
class ACNNConfig:
    channels: tuple[str, ...] = ("global", "local")  # docs/paper.md §4: CNN+Attention; ablations drop one
    dim: int = 100  # docs/paper.md §2: word2vec size d
    windows: tuple[int, ...] = (1, 2, 3)  # docs/paper.md §3: global windows l
    n_maps: int = 100  # docs/paper.md §3: feature maps per window
    h: int = 5  # docs/paper.md §2.1: attention window (odd: centred on the word)
    delta: float = 0.8  # docs/paper.md §2.2: threshold mix
    attention: Literal["soft", "hard"] = "soft"  # hard = the paper's literal 0/1 mask (no gradient to M_a)
    local_dim: int = 100  # size of h_l; not given, = the word size so folding -> h_l is square
    hidden: int = 200  # size of h (combining filters); not given, = |h_g| / 1.5, see docs/results/acnn.md
    dropout: float = 0.5  # on [h_g; h_l] before combining (Kim 2014's place and rate); not in the paper
    # docs/paper.md §5 "pairs": one (post, hashtag) pair per hashtag; "soft" (uniform over the post's
    # hashtags) scores better on weibo and ties on tweeteval (docs/paper.md §11), so it is the default
    target: Literal["pairs", "soft"] = "soft"
    embeddings: Literal["word2vec", "random"] = "word2vec"  # docs/paper.md §5: pretrained on the train posts
    static_embeddings: bool = False  # docs/paper.md §6 Table 2: True keeps the word vectors frozen
    w2v_epochs: int = 5  # gensim's default
    # word2vec vectors wider than this std (the random init's, U(-0.25, 0.25)) are scaled down to
    # it; 0 keeps gensim's own scale (0.23 on Weibo, 0.16 on tweeteval). See _fit
    w2v_std: float = 0.25 / 3**0.5
    min_count: int = 5  # rarer words get <unk>; word2vec's own default. Weibo: 34k words, not 141k
    min_label_count: int = 2  # softmax over hashtags seen this often; rarer ones score 0 (see _fit)
    max_len: int = 100  # tokens kept per post (the head): all of 94% of Weibo posts, 86% of tokens
    batch_size: int = 200  # docs/paper.md §5
    optimizer: Literal["adam", "adadelta"] = "adam"  # docs/paper.md §5 AdaDelta; Adam learns more per epoch (§11)
    lr: float = 5e-3  # Adam; 1e-3 learns too slowly for a few epochs, 1e-2 cnn fine/acnn diverged (docs)
    clip: float = 5.0  # max gradient norm per step, a guard against the divergence seen at lr 1e-2
    epochs: int = 10
    patience: int = 3  # stop after this many epochs without a better dev F1@1
    seed: int = 0

    def __post_init__(self) -> None:
        check(
            len(self.channels) > 0
            and set(self.channels) <= {"global", "local"}
            and len(set(self.channels)) == len(self.channels),
            f"channels must be a non-empty subset of ('global', 'local'), got {self.channels!r}",
        )
        check(
            len(self.windows) > 0 and all(w >= 1 for w in self.windows),
            f"windows must be positive window sizes, e.g. (1, 2, 3), got {self.windows!r}",
        )
        check(
            self.h >= 1 and self.h % 2 == 1,
            f"h (attention window) must be odd and >= 1 so it centres on the word, got {self.h}",
        )
        check(0.0 <= self.delta <= 1.0, f"delta must be in [0, 1], got {self.delta}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        for name in (
            "dim",
            "n_maps",
            "local_dim",
            "hidden",
            "min_count",
            "min_label_count",
            "max_len",
            "batch_size",
            "epochs",
            "patience",
            "w2v_epochs",
        ):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.w2v_std >= 0, f"w2v_std must be >= 0 (0 keeps gensim's scale), got {self.w2v_std}")
        check(self.lr > 0 and self.clip > 0, f"lr and clip must be > 0, got {self.lr}, {self.clip}")


# ---------------------------------------------------------------------------- the network


class WindowLinear(nn.Linear):
    """A linear layer over windows of `size` words: M . [w_t; ...; w_{t+size-1}] + b (Kim 2014's filter).

    `forward` is the layer on every window of a post after `left`/`right` zero pads, the plain
    math; the network takes `window_sums` (no bias), which `fast` computes from per-word products
    M_j . w_i without copying the windows (acnn_fast.window_sums, the same numbers).
    """

    def __init__(self, dim: int, n_out: int, size: int, left: int, right: int) -> None:
        super().__init__(size * dim, n_out)  # keys and shapes of the nn.Linear it replaced: old models load
        self.size, self.left, self.right = size, left, right

    def window_sums(self, w: torch.Tensor, fast_path: bool = True) -> torch.Tensor:
        """(B, T + left + right - size + 1, out): M . (window t), bias not added, for words `w` (B, T, d)."""
        if fast_path:
            return fast.window_sums(self, w)
        windows = F.pad(w, (0, 0, self.left, self.right)).unfold(1, self.size, 1)  # (B, T', d, size)
        return F.linear(windows.flatten(2), self.weight)  # column c * size + j is word j's c-th value

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.window_sums(w, fast_path=False) + self.bias


class LocalAttention(nn.Module):
    """The local attention channel (docs/paper.md §2): trigger words folded into h_l.

    s_i = tanh(M_a . w_{i-(h-1)/2 : i+(h-1)/2} + b)       one filter: a scalar per word
    eta = delta * min(s) + (1 - delta) * max(s)           over the post's real words only
    folding = sum_i a_i w_i / sum_i a_i,  h_l = tanh(M_l . folding + b)

    Hard (the paper): a_i = 1 if s_i >= eta else 0. This gives M_a no gradient at all.
    Soft (hashrec's default): a_i = clamp((s_i - eta) / (max(s) - eta), 0, 1), the same words kept
    (a_i > 0 exactly when s_i > eta), weighted linearly from 0 at the threshold to 1 at the top
    word, and M_a learns through s_i and eta.

    Departure: the paper's folding is the plain sum; hashrec divides it by sum_i a_i (a weighted
    mean of the trigger words) so that h_l does not grow with the post's length (with the sum,
    acnn diverged: docs/results/acnn.md). ">=" rather than the paper's ">" only matters when all scores tie
    (a one-word post): then eta = max(s) and every word is kept with weight 1 rather than none.
    """

    def __init__(self, dim: int, h: int, delta: float, out_dim: int, hard: bool) -> None:
        super().__init__()
        self.delta, self.hard = delta, hard
        half = (h - 1) // 2  # zero vectors as the begin/end tokens
        self.score = WindowLinear(dim, 1, h, half, half)  # M_a, b: one filter over the h-word window
        self.fold = nn.Linear(dim, out_dim)

    def weights(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """a_i per word, (B, T); 0 at padding.

        `z` (B, T, 1) are the score filter's window sums, `mask` (B, T) the real words.
        """
        s = torch.tanh(z.squeeze(2) + self.score.bias)  # (B, T)
        s_max = s.masked_fill(~mask, -2.0).amax(1, keepdim=True)  # tanh is in (-1, 1): pads never win
        s_min = s.masked_fill(~mask, 2.0).amin(1, keepdim=True)
        return self.a(s, s_min, s_max) * mask

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


class GlobalConv(nn.Module):
    """The global channel (docs/paper.md §3, Kim 2014): h_g = [tanh(max_t (M_l . w_{t:t+l-1}) + b)] per window l.

    Each window size runs as a wide convolution (l - 1 zero pads each side) so that a post
    shorter than l still has windows; positions whose window lies wholly in the batch padding
    are masked out of the max. tanh is monotone and b is the same at every position, so adding
    b and tanh after the max equals z_i = tanh(M w + b) before it (the paper's order).
    """

    def __init__(self, dim: int, sizes: tuple[int, ...], n_maps: int) -> None:
        super().__init__()
        self.maps = nn.ModuleList(
            WindowLinear(dim, n_maps, width, width - 1, width - 1) for width in sizes
        )  # M_g, b per window size

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

    def h_g(self, maxima: list[torch.Tensor]) -> torch.Tensor:
        """tanh(max + b) per window size, concatenated: (B, maps * len(sizes))."""
        return torch.tanh(torch.cat([mx + m.bias for m, mx in zip(self.maps, maxima)], 1))


class ACNNNet(nn.Module):
    """Embeddings -> global and/or local channel -> hidden = tanh(M [h_g; h_l] + b) -> hashtag logits.

    `fast` (True) is the one switch of the CPU inference engine (acnn_fast): window sums from
    per-word products or from tables, packed batches without padding, a two-pass top-k and
    column-major dense weights. False computes every block the plain way (padded batches, unfolded
    windows); the two agree up to rounding (tests/test_acnn.py).
    """

    def __init__(self, n_words: int, n_labels: int, cfg: ACNNConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_words, cfg.dim, padding_idx=0)
        self.local = (
            LocalAttention(cfg.dim, cfg.h, cfg.delta, cfg.local_dim, cfg.attention == "hard")
            if "local" in cfg.channels
            else None
        )
        self.glob = GlobalConv(cfg.dim, cfg.windows, cfg.n_maps) if "global" in cfg.channels else None
        width = (cfg.n_maps * len(cfg.windows) if self.glob else 0) + (cfg.local_dim if self.local else 0)
        self.drop = nn.Dropout(cfg.dropout)
        self.combine = nn.Linear(width, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, n_labels)
        self.target = cfg.target
        self.fast = True  # acnn_fast's engine; False: the plain math path
        self._tables: tuple[tuple, list[torch.Tensor]] | None = None  # see window_sums

    def train(self, mode: bool = True) -> ACNNNet:
        # the tables of window_sums are dropped whenever the mode changes: an optimizer may change
        # the weights without bumping their version (fused Adam does not), but only in training
        self._tables = None
        return super().train(mode)

    def for_inference(self) -> ACNNNet:
        """Eval mode; with `fast`, dense weights stored column-major (acnn_fast.column_major). Idempotent."""
        if self.fast:
            fast.column_major(self)
        return self.eval()

    def windowed(self) -> list[WindowLinear]:
        """The layers over word windows: the global maps, then the attention's score filter."""
        return [*(self.glob.maps if self.glob else []), *([self.local.score] if self.local else [])]

    @property
    def gap(self) -> int:
        """Zero ids between the posts of a `Packed` batch: the windowed layers' widest pad."""
        return max(m.left for m in self.windowed())

    def window_sums(self, x: torch.Tensor, w: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every windowed layer's `WindowLinear.window_sums` for word ids `x` (B, T).

        `w` are the embeddings (`embed(x)` if None).

        With `fast`, inference (no gradient, eval mode) reads them from tables of M_j . E_v
        (acnn_fast.tables), built once per set of weights; a vocabulary whose tables would pass
        acnn_fast.TABLE_BYTES keeps the products. Not in the paper; an inference shortcut only.
        """
        layers = self.windowed()
        if self.fast and not (self.training or torch.is_grad_enabled()) and fast.tables_fit(self.embed, layers):
            self._tables = fast.tables(self.embed, layers, self._tables)
            return [fast.table_sums(m, x, t) for m, t in zip(layers, self._tables[1])]
        w = self.embed(x) if w is None else w
        return [m.window_sums(w, self.fast) for m in layers]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The combined layer (B, hidden): the input of the softmax. `x` (B, T) word ids, 0 = pad."""
        mask = x != 0
        w = self.embed(x)  # (B, T, d)
        zs = self.window_sums(x, w)
        parts = []
        if self.glob is not None:
            parts.append(self.glob(zs[: len(self.glob.maps)], mask.sum(1)))
        if self.local is not None:
            parts.append(self.local(zs[-1], w, mask))
        return self.hidden(parts)

    def hidden(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The combined layer h, docs/paper.md §4: tanh(M [h_g; h_l] + b), dropout on [h_g; h_l] in training."""
        return torch.tanh(self.combine(self.drop(torch.cat(parts, 1))))

    def infer(self, rows: list[list[int]], device: torch.device | str = "cpu") -> torch.Tensor:
        """The combined layer (B, hidden) of posts given as non-empty word-id rows (inference)."""
        if self.fast:  # the posts packed in one row: no padding to compute on
            return fast.packed_features(self, fast.pack(rows, self.gap, device))
        return self.features(pad(rows).to(device))

    def trigger_weights(self, rows: list[list[int]], device: torch.device | str = "cpu") -> list[np.ndarray]:
        """The local attention's a_i for each post of word-id `rows` (models with the local channel)."""
        if self.fast:
            return fast.trigger_weights(self, fast.pack(rows, self.gap, device))
        x = pad(rows).to(device)
        a = self.local.weights(self.window_sums(x)[-1], x != 0).detach().cpu().numpy()
        return [a[i, : len(r)] for i, r in enumerate(rows)]

    def top_k(self, z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`z.topk(k, dim=1)` of logits `z` (B, n_labels); equal values may come in another order with `fast`."""
        return fast.top_k_rows(z, k) if self.fast else z.topk(k, dim=1)

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


def pad(rows: list[list[int]], value: int = 0) -> torch.Tensor:
    """(len(rows), longest) LongTensor, short rows filled with `value`."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), lengths.max()), value, dtype=np.int64)
    out[np.arange(out.shape[1]) < lengths[:, None]] = np.fromiter(itertools.chain.from_iterable(rows), np.int64)
    return torch.from_numpy(out)
