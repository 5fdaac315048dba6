"""Tokens: jieba-rs (hashrec's segmenter) gives jieba's tokens on real Weibo posts."""

from __future__ import annotations

import logging
import re

import jieba
import pytest

from hashrec import tokens

jieba.setLogLevel(logging.WARNING)


@pytest.fixture
def with_jieba(monkeypatch):
    """`tokens.tokenize` with jieba 0.42.1 itself as the segmenter: the reference."""

    def reference(texts: list[str]) -> list[list[str]]:
        with monkeypatch.context() as m:
            m.setattr(tokens, "segment", jieba.lcut)
            return [tokens.tokenize(t) for t in texts]

    return reference


def test_tokens_agree_with_jieba_on_weibo_posts(weibo_sample, with_jieba):
    texts = [p.text for part in weibo_sample.values() for p in part]
    assert len(texts) > 4000
    got = [tokens.tokenize(t) for t in texts]
    expected = with_jieba(texts)
    differ = [(t, g, e) for t, g, e in zip(texts, got, expected) if g != e]
    assert not differ, f"{len(differ)} of {len(texts)} posts differ, e.g. {differ[0]}"


@pytest.mark.parametrize(
    "text",
    [
        "新冠COVID-19疫苗",
        "详情见t.cn/A6abc 和 www.example.com",
        "涨到8.5W了",
        "2020.3.16日发布",
        "SARS-CoV-2病毒",
        "武汉加油！！",
    ],
)
def test_joined_latin_words_split_as_jieba_splits_them(text, with_jieba):
    assert tokens.segment(text) == jieba.lcut(text)
    assert tokens.tokenize(text) == with_jieba([text])[0]


def test_progress_in_a_log_is_one_line_with_its_time(capsys):
    """stderr not a terminal (pytest captures it): no bar, one line when the stage ends."""
    from hashrec.tokens import tokenize_parallel

    docs = tokenize_parallel([f"post {i} 武汉" for i in range(300)], workers=1, progress=True)
    err = capsys.readouterr().err
    assert len(docs) == 300 and re.fullmatch(r"tokenize: \d+ chunks in \d+\.\d s\n", err), err
