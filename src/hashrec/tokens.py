"""Clean text -> tokens, for Chinese (jieba) and English, and the `Vocab` that maps them to ids.

Tokenising 400k Weibo posts with jieba takes minutes, so `tokenize_many` spreads large batches
over worker processes and caches the result on disk under a key of the texts' content hash and
the tokenizer version: a cache that does not match its input is never used.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from hashrec.data import CJK
from hashrec.store import atomic_open

TOKENIZER_VERSION = "2"  # 2: jieba-rs in place of jieba (the same tokens but for 2 in 120k Weibo posts)
URL = re.compile(r"https?://\S+|www\.\S+")
# A word: letters/digits (with inner apostrophes), an @mention, or one CJK run left for jieba.
EN_TOKEN = re.compile(r"@\w+|[^\W_]+(?:'[^\W_]+)*", re.UNICODE)
NUMBER = re.compile(r"^\d+([.,:]\d+)*$")
WORD_CHAR = re.compile(r"[^\W_]")  # the characters str.isalnum accepts, found in C rather than a loop
# jieba's split of the text between dictionary words that are not Chinese (finalseg's re_skip)
JIEBA_NON_HAN = re.compile(r"[a-zA-Z0-9]+(?:\.\d+)?%?|[^a-zA-Z0-9]+")
JOINED = re.compile(r"[^\u4e00-\u9fd5a-zA-Z0-9]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
CACHE_MIN = 5000  # smaller batches tokenize faster than a cache round trip


def segment(text: str) -> list[str]:
    """jieba's segmentation (dictionary words, HMM for the others) of Chinese text, by jieba-rs.

    jieba-rs (the `rjieba` binding) runs jieba's algorithm on jieba's dictionary several times
    faster than jieba's Python (docs/PERFORMANCE.md). Where it differs: it keeps a run of Latin
    letters and digits joined by punctuation ("COVID-19", "t.cn") as one word, which jieba splits
    at the punctuation; such words are split here as jieba does. Then the tokens agree with
    jieba 0.42.1 on 119,998 of the 120,000 Weibo benchmark posts (tests/test_tokens.py checks a
    sample); the other two differ in an HMM tie ("老布布布布").
    """
    import rjieba

    try:
        words = rjieba.cut(text, hmm=True)
    except UnicodeEncodeError:  # a lone surrogate (from Python, or a JSON escape) is no character: a space
        words = rjieba.cut(LONE_SURROGATE.sub(" ", text), hmm=True)
    out: list[str] = []
    for word in words:
        if len(word) > 1 and JOINED.search(word) and not CJK.search(word):
            out += JIEBA_NON_HAN.findall(word)
        else:
            out.append(word)
    return out


@functools.lru_cache(maxsize=1 << 17)
def _normalise(piece: str) -> str | None:
    """The token of one piece of text, None to drop it. Cached: a few thousand words make most of any text."""
    if piece == "URLTOKEN":
        return "<url>"
    token = piece.strip().lower()
    if not WORD_CHAR.search(token):
        return None  # punctuation, emoji, white space
    return "<num>" if token[0].isdigit() and NUMBER.match(token) else token  # isdigit: a cheap pre-check


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; URLs become <url>, numbers <num>, punctuation and emoji are dropped.

    >>> tokenize("Happy to be in NYC, 2019! http://t.co/x")
    ['happy', 'to', 'be', 'in', 'nyc', '<num>', '<url>']
    """
    text = URL.sub(" URLTOKEN ", text)
    pieces = segment(text) if CJK.search(text) else EN_TOKEN.findall(text)
    return [t for t in map(_normalise, pieces) if t is not None]


def _tokenize_chunk(texts: list[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


def cache_dir() -> Path:
    return Path(os.environ.get("HASHREC_CACHE", Path.home() / ".cache" / "hashrec"))


def _cache_key(texts: Sequence[str]) -> str:
    h = hashlib.sha256(f"tokenizer-{TOKENIZER_VERSION}\n".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:32]


def docs_key(prefix: str, docs: Iterable[Sequence[str]], suffix: str = "") -> str:
    """A content key (32 hex digits) of tokenised posts, between `prefix` and `suffix`, for on-disk caches.

    SHA-256 of `prefix`, then each post's tokens joined by U+001F and ended by NUL, then `suffix`.
    """
    h = hashlib.sha256(prefix.encode())
    for d in docs:
        h.update("\x1f".join(d).encode("utf-8", "surrogatepass") + b"\0")
    h.update(suffix.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def tokenize_many(
    texts: Sequence[str], *, workers: int | None = None, cache: bool = True, progress: bool = False
) -> list[list[str]]:
    """Tokenize a batch; large batches run on `workers` processes and are cached by content."""
    texts = list(texts)
    if len(texts) < CACHE_MIN:
        return _tokenize_chunk(texts)
    path = cache_dir() / "tokens" / f"{_cache_key(texts)}.json.gz"
    if cache and path.is_file():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                docs = json.load(f)
            if isinstance(docs, list) and len(docs) == len(texts):
                return docs
        except (OSError, EOFError, json.JSONDecodeError):
            pass  # a damaged cache is rebuilt below
    docs = tokenize_parallel(texts, workers=workers, progress=progress)
    if cache:
        # level 1: for 400k posts level 9 costs ~45 CPU seconds (a quarter of the tokenising) for a 15% smaller file
        with atomic_open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as f:
            f.write(json.dumps(docs, ensure_ascii=False).encode())
    return docs


def tokenize_parallel(texts: Sequence[str], *, workers: int | None = None, progress: bool = False) -> list[list[str]]:
    """`tokenize` over `workers` processes (default: the CPUs, at most 4), whatever the batch size; no cache."""
    texts = list(texts)
    workers = workers or min(os.cpu_count() or 1, 4)
    chunks = [texts[i : i + 2000] for i in range(0, len(texts), 2000)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = pool.map(_tokenize_chunk, chunks)
            return [d for part in _progress(parts, len(chunks), progress) for d in part]
    return [d for c in _progress(map(_tokenize_chunk, chunks), len(chunks), progress) for d in c]


def _progress(it: Iterable, total: int, enabled: bool) -> Iterable:
    """A bar on a terminal; elsewhere (a log) one line when the stage ends, with its time."""
    if not enabled:
        return it
    if not sys.stderr.isatty():
        return _stage_line(it, total)
    from tqdm import tqdm

    return tqdm(it, total=total, desc="tokenize", unit="chunk", leave=False)


def _stage_line(it: Iterable, total: int) -> Iterator:
    start = time.perf_counter()
    yield from it
    print(f"tokenize: {total} chunks in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


class Vocab:
    """Token <-> id map; id 0 is padding, id 1 the unknown token.

    >>> v = Vocab.build([["a", "b"], ["a"]]); v.encode(["a", "c"])
    [2, 1]
    """

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, itos: list[str]):
        if itos[:2] != [self.PAD, self.UNK]:
            raise ValueError("a Vocab starts with <pad>, <unk>")
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}

    @classmethod
    def build(cls, docs: Iterable[Sequence[str]], *, min_count: int = 1, max_size: int | None = None) -> Vocab:
        counts = Counter(t for d in docs for t in d)
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count]
        return cls([cls.PAD, cls.UNK] + kept[:max_size])

    def grow(self, docs: Iterable[Sequence[str]]) -> None:
        """Append the tokens not yet known, in order of first appearance; known ids never change.

        >>> v = Vocab.build([["a"]]); v.grow([["b", "a", "c"]]); v.itos
        ['<pad>', '<unk>', 'a', 'b', 'c']
        """
        for doc in docs:
            for token in doc:
                if token not in self.stoi:
                    self.stoi[token] = len(self.itos)
                    self.itos.append(token)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, doc: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, 1) for t in doc]
