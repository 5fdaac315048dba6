"""`hashrec bench` in quick mode on the bundled sample: every row of the table, with positive numbers.

No timing is asserted (the machine is shared); the FLOP count is checked against torch's own counter.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import SAMPLE
from torch.utils.flop_counter import FlopCounterMode

from hashrec.bench import acnn_flops, bench
from hashrec.models.acnn_net import ACNNConfig, ACNNNet

GROUPS = {"tokenise", "train", "infer", "latency", "memory", "flops", "sweep"}


@pytest.mark.parametrize("channels", [("global", "local"), ("global",), ("local",)])
def test_flops_match_torch_counter(channels):
    cfg = ACNNConfig(channels=channels, dim=8, n_maps=5, local_dim=6, hidden=7, windows=(1, 3))
    net = ACNNNet(50, 11, cfg)
    x = torch.randint(1, 50, (1, 9))
    with FlopCounterMode(display=False) as forward:
        net.eval()(x)
    with FlopCounterMode(display=False) as training:
        net.train()(x, torch.tensor([[3]]))[1].backward()
    assert forward.get_total_flops() == acnn_flops(cfg, n_labels=11, n_tokens=9)
    assert training.get_total_flops() == 3 * acnn_flops(cfg, n_labels=11, n_tokens=9)
    net.eval()
    with torch.inference_mode():
        net(x)  # builds the window tables, once per set of weights
        with FlopCounterMode(display=False) as inference:
            net(x)
    assert inference.get_total_flops() == acnn_flops(cfg, n_labels=11, n_tokens=9, inference=True)


def test_quick_bench_every_row_positive(tmp_path):
    rows = bench(SAMPLE / "weibo", SAMPLE / "tweeteval", quick=True, threads=1, out=tmp_path)
    measures = [r.measure for r in rows]
    assert {r.group for r in rows} == GROUPS
    for wanted in (
        "zh (jieba-rs), 1 process",
        "en (regex), pool of 1",
        "fastText: dev F1@1",
        "acnn: epoch time",
        "acnn: training throughput",
        "acnn: wall time to fastText's dev F1@1",
        "acnn: batch, tokens in",
        "fastText predict: batch, text in",
        "acnn / fastText predict, text in",
        "acnn: one post, text in",
        "acnn: peak RSS, training",
        "acnn: peak RSS, serving",
        "matmul peak, 1 thread(s)",
        "acnn: training, achieved",
        "acnn: inference, achieved",
    ):
        assert wanted in measures, f"no row {wanted!r} in {measures}"
    for r in rows:  # an F1 may be 0: one epoch on 1,000 posts of a sample with thousands of hashtags
        low_ok = "F1@1" in r.measure and r.value == 0
        assert math.isfinite(r.value) and (r.value > 0 or low_ok), f"{r.measure}: {r.value}"
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert [r["measure"] for r in saved["rows"]] == measures
    assert len(saved["machine"]["load_start"]) == 3
    table = (tmp_path / "bench.md").read_text()
    assert all(f"| {m} |" in table for m in measures)
