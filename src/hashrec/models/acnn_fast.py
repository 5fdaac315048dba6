"""The CPU inference engine of the attention-based CNN (acnn_net.py): the same numbers, faster.

Nothing here is in the paper; every function computes what a block of `acnn_net` computes, and
tests/test_acnn.py ties each one to its plain path. `ACNNNet.fast` (True by default) is the one
switch that selects this engine:

- window sums from per-word products (`window_sums`, `_WindowSums`): training and inference,
  without copying the windows;
- window sums from tables of M_j . E_v over the vocabulary (`table`, `table_sums`, `tables`):
  inference only, faster than the products;
- `Packed` batches (`pack`): a batch's posts in one row without padding, and each channel's
  max / min / folding as scatter reductions over it (`packed_features`, `trigger_weights`);
- `top_k_rows`: top-k of wide logit rows in two passes;
- `column_major`: the dense layers' weights stored transposed.

docs/PERFORMANCE.md and docs/PERFORMANCE-serve.md hold the measurements.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from hashrec.models.acnn_net import ACNNNet, GlobalConv, LocalAttention, WindowLinear

TABLE_BYTES = 1 << 30  # inference tables past this (1.1M words at the default sizes) are not built


# ---------------------------------------------------------------------------- window sums from products


def blocks(layer: WindowLinear) -> torch.Tensor:
    """[M_0 | M_1 | ...], (d, size * out): the layer's weight split by the word's position in the window.

    Its weight M is (out, size * d) with word j of a window at column c * size + j, so M splits
    into blocks M_0 .. M_{size-1} and the window's value is sum_j M_j . w_{t+j}.
    """
    return (
        layer.weight.view(layer.out_features, -1, layer.size)
        .permute(1, 2, 0)
        .reshape(-1, layer.size * layer.out_features)
    )


def products(layer: WindowLinear, w: torch.Tensor) -> torch.Tensor:
    """y (B, T, size, out), y[:, i, j] = M_j . w_i, for words `w` (B, T, d): one matrix product."""
    return (w @ blocks(layer)).view(*w.shape[:2], layer.size, layer.out_features)


def window_sums(layer: WindowLinear, w: torch.Tensor) -> torch.Tensor:
    """`WindowLinear.window_sums` from the per-word products: M . (window t) = sum_j y_{t+j-left, j}.

    Pads contribute nothing, so neither the windows (B, T', size * d) nor the padded words are
    ever copied: unfolding the windows cost a third of inference; Conv1d is several times slower
    on the CPU.
    """
    y = products(layer, w)
    return _WindowSums.apply(y, layer.left, y.size(1) + layer.left + layer.right - y.size(2) + 1)


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
    training step (profiled). Here the backward is one slice copy per offset.
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


# ---------------------------------------------------------------------------- window sums from tables


def table(layer: WindowLinear, embeddings: torch.Tensor) -> torch.Tensor:
    """(V * size, out): row v * size + j is M_j . E_v, for the embedding matrix E (V, d).

    M_j . w_i depends on the word only, so at inference a window's sum is the sum of `size` rows.
    """
    return (embeddings @ blocks(layer)).view(-1, layer.out_features)


def table_sums(layer: WindowLinear, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`WindowLinear.window_sums` for word ids `x` (B, T) from its `table` `rows`: word 0 (padding, a zero
    vector) stands for the pads. An embedding bag, one sum per window."""
    windows = F.pad(x, (layer.left, layer.right)).unfold(1, layer.size, 1)  # (B, T', size) word ids
    ids = windows * layer.size + torch.arange(layer.size, device=x.device)
    return F.embedding_bag(ids.reshape(-1, layer.size), rows, mode="sum").view(*windows.shape[:2], -1)


def tables_fit(embed: nn.Embedding, layers: list[WindowLinear]) -> bool:
    """Whether the layers' tables stay within TABLE_BYTES (Weibo: 34k words, 82 MB in all)."""
    size = embed.num_embeddings * sum(m.size * m.out_features for m in layers) * embed.weight.element_size()
    return size <= TABLE_BYTES


def tables(
    embed: nn.Embedding, layers: list[WindowLinear], cached: tuple[tuple, list[torch.Tensor]] | None
) -> tuple[tuple, list[torch.Tensor]]:
    """(key, each layer's `table`), reusing `cached` while the weights are the same tensors at the same
    version (an in-place change bumps it; `ACNNNet.train` drops the cache, for optimizers that do not)."""
    key = tuple((p.data_ptr(), p._version) for p in (embed.weight, *(m.weight for m in layers)))
    if cached is not None and cached[0] == key:
        return cached
    return key, [table(m, embed.weight) for m in layers]


# ---------------------------------------------------------------------------- packed batches


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


def attention_weights(local: LocalAttention, z: torch.Tensor, batch: Packed) -> torch.Tensor:
    """`LocalAttention.weights` for a `Packed` batch, (words,): `z` (1, windows, 1) the score filter's
    sums over its row. The filter's window centred on a word is the one numbered as the word's place."""
    s = torch.tanh(z[0, batch.at, 0] + local.score.bias)
    s_max = s.new_full((batch.size,), -2.0).scatter_reduce_(0, batch.post, s, "amax")[batch.post]
    s_min = s.new_full((batch.size,), 2.0).scatter_reduce_(0, batch.post, s, "amin")[batch.post]
    return local.a(s, s_min, s_max)


def h_l(local: LocalAttention, z: torch.Tensor, batch: Packed, embed: nn.Embedding) -> torch.Tensor:
    """`LocalAttention.forward` for a `Packed` batch: the folding as an embedding bag weighted by a_i."""
    a = attention_weights(local, z, batch)
    total = a.new_zeros(batch.size).index_add_(0, batch.post, a)
    folding = F.embedding_bag(batch.ids, embed.weight, batch.starts, mode="sum", per_sample_weights=a)
    return torch.tanh(local.fold(folding / total[:, None]))


def h_g(glob: GlobalConv, zs: list[torch.Tensor], batch: Packed) -> torch.Tensor:
    """`GlobalConv.forward` for a `Packed` batch: `zs` each map's window sums over the row (1, windows, maps);
    max-over-time as a scatter max of each window to its post."""
    maxima = []
    for m, z in zip(glob.maps, zs):
        z = z[0]
        owners = batch.owners(m.size)[:, None].expand_as(z)  # windows of no post go to row B
        maxima.append(z.new_full((batch.size + 1, z.size(1)), float("-inf")).scatter_reduce_(0, owners, z, "amax")[:-1])
    return glob.h_g(maxima)


def packed_features(net: ACNNNet, batch: Packed) -> torch.Tensor:
    """`ACNNNet.features` of a `Packed` batch: the combined layer (B, hidden), without padding."""
    zs = net.window_sums(batch.row)
    parts = []
    if net.glob is not None:
        parts.append(h_g(net.glob, zs[: len(net.glob.maps)], batch))
    if net.local is not None:
        parts.append(h_l(net.local, zs[-1], batch, net.embed))
    return net.hidden(parts)


def trigger_weights(net: ACNNNet, batch: Packed) -> list[np.ndarray]:
    """The local attention's a_i for each post of `batch` (models with the local channel)."""
    a = attention_weights(net.local, net.window_sums(batch.row)[-1], batch).detach().cpu().numpy()
    return np.split(a, np.cumsum(batch.lengths)[:-1])


# ---------------------------------------------------------------------------- output layer


def top_k_rows(z: torch.Tensor, k: int, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """`z.topk(k, dim=1)` (values and indices, best first) for wide rows, in two passes.

    The k best of a row lie in the `chunk`-wide slices holding the k largest slice maxima, so
    one vectorised max per slice and a top-k over the k * chunk candidates replace torch's
    top-k over the whole row, a large share of inference over thousands of hashtags.
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


def column_major(net: ACNNNet) -> None:
    """Each dense layer's W stored transposed (column-major): the same values, but the CPU multiplies
    the few posts' rows of a server's call by the output layer's W^T faster that way. Training works
    on either layout. Idempotent."""
    for layer in (net.combine, net.out, *([net.local.fold] if net.local else [])):
        layer.weight.data = layer.weight.data.t().contiguous().t()
