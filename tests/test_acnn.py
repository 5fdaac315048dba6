"""The attention-based CNN (hashrec.models.acnn): the attention arithmetic by hand, training on a
real 2,000-post Weibo slice, checkpoint/resume after SIGKILL, and explanations end to end."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashrec import api
from hashrec.errors import ConfigError
from hashrec.models import acnn_fast, create
from hashrec.models.acnn import CHECKPOINT
from hashrec.models.acnn_fast import pack, top_k_rows
from hashrec.models.acnn_net import ACNNConfig, ACNNNet, LocalAttention, WindowLinear, pad
from hashrec.models.base import top_k
from hashrec.tokens import tokenize_many

ROOT = Path(__file__).resolve().parents[1]
# tiny dims, small batches, a brisk lr: seconds per fit, yet enough steps to learn from 2,000 posts
TINY = dict(dim=32, n_maps=32, local_dim=32, hidden=64, batch_size=20, lr=1e-2, epochs=3, min_count=1, dropout=0.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared CPU two threads wait on each other (5x slower per step, measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TEXTS = ["钟南山说疫情拐点还没有到来", "武汉加油，致敬医护人员", ""]


def five_word_attention(hard: bool) -> tuple[LocalAttention, torch.Tensor, torch.Tensor]:
    """h = 1, d = 1, weight 1 and bias b: s_i = tanh(x_i + b) with x chosen to give known scores.

    Scores of the 5 words: 0.1, 0.5, -0.3, 0.9, 0.2; two padding positions (embedding 0) score
    tanh(b) = 0.99, above every word, so counting them would change max(s) and the kept set.
    """
    att = LocalAttention(dim=1, h=1, delta=0.8, out_dim=2, hard=hard)
    b = math.atanh(0.99)
    with torch.no_grad():
        att.score.weight.fill_(1.0)
        att.score.bias.fill_(b)
    s = torch.tensor([0.1, 0.5, -0.3, 0.9, 0.2])
    x = torch.cat([torch.atanh(s) - b, torch.zeros(2)]).view(1, 7, 1)
    mask = torch.tensor([[True] * 5 + [False] * 2])
    return att, x, mask


def test_eta_and_trigger_words_by_hand():
    # eta = 0.8 * min + 0.2 * max = 0.8 * -0.3 + 0.2 * 0.9 = -0.06: all but the -0.3 word are kept
    eta, top = -0.06, 0.9
    hard, x, mask = five_word_attention(hard=True)
    np.testing.assert_allclose(hard.weights(x, mask)[0].numpy(), [1, 1, 0, 1, 1, 0, 0])
    soft, x, mask = five_word_attention(hard=False)
    expected = [(s - eta) / (top - eta) for s in (0.1, 0.5)] + [0.0, 1.0, (0.2 - eta) / (top - eta), 0, 0]
    np.testing.assert_allclose(soft.weights(x, mask)[0].detach().numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    "size,left,right,words",
    [(1, 0, 0, 6), (2, 1, 1, 6), (3, 2, 2, 6), (5, 2, 2, 6), (3, 0, 1, 6), (7, 3, 3, 1), (7, 3, 3, 2), (3, 2, 2, 1)],
)
def test_window_sums_equal_the_layer_on_each_window(size, left, right, words):
    # posts shorter than a window (words < size) occur: a batch of one-word posts under h = 7
    torch.manual_seed(size)
    layer = WindowLinear(7, 4, size, left, right)
    embed = torch.randn(10, 7)
    embed[0] = 0  # word 0 is padding, a zero vector
    x = torch.randint(1, 10, (3, words))
    x[0, words // 2 :] = 0  # a shorter post, padded
    w = embed[x].requires_grad_(True)
    padded = torch.cat([torch.zeros(3, left, 7), w, torch.zeros(3, right, 7)], 1)
    # the paper's window: the words w_t .. w_{t+size-1} stacked, one filter bank over them
    expected = torch.stack(
        [
            F.linear(padded[:, t : t + size].transpose(1, 2).flatten(1), layer.weight, layer.bias)
            for t in range(padded.size(1) - size + 1)
        ],
        1,
    )
    with torch.no_grad():
        table = acnn_fast.table(layer, embed)
        torch.testing.assert_close(acnn_fast.table_sums(layer, x, table) + layer.bias, expected)  # inference
    # training: products, then shifted sums (fast), or the unfolded windows (plain); their gradient
    # is the explicit windows' gradient
    grad = torch.randn_like(expected)
    for got in (layer.window_sums(w) + layer.bias, layer(w)):
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(
            torch.autograd.grad(got, (w, layer.weight), grad),
            torch.autograd.grad(expected, (w, layer.weight), grad, retain_graph=True),
        )


def test_inference_tables_give_the_training_path_and_follow_the_weights():
    torch.manual_seed(0)
    net = ACNNNet(n_words=30, n_labels=7, cfg=ACNNConfig(dim=8, n_maps=4, local_dim=6, hidden=5)).eval()
    x = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12], [2, 0, 0, 0, 0, 0]])
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)  # fused: the weights' versions stay put

    def agree() -> None:
        with torch.enable_grad():  # gradients on: the products path
            expected = net.features(x).detach()
        with torch.inference_mode():
            torch.testing.assert_close(net.features(x), expected)

    agree()
    with torch.no_grad():  # weights changed in place (load_state_dict, a plain optimizer) rebuild the tables
        net.glob.maps[1].weight.add_(0.5)
        net.embed.weight[5:].mul_(2.0)
    agree()
    net.train()  # and so does training, whatever the optimizer
    net(x, torch.tensor([[1], [2], [3]]))[1].backward()
    opt.step()
    net.eval()
    agree()


def test_a_vocabulary_too_large_for_tables_keeps_the_products(monkeypatch):
    torch.manual_seed(0)
    net = ACNNNet(n_words=30, n_labels=7, cfg=ACNNConfig(dim=8, n_maps=4, local_dim=6, hidden=5)).eval()
    x = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12]])
    with torch.inference_mode():
        expected = net.features(x)
    net.train().eval()  # drops the tables
    # this net's tables: 30 words x (1 + 2 + 3 windows x 4 maps + 5 x 1 score) floats of 4 bytes; one byte short
    monkeypatch.setattr(acnn_fast, "TABLE_BYTES", 30 * (6 * 4 + 5) * 4 - 1)
    with torch.inference_mode():
        torch.testing.assert_close(net.features(x), expected)
    assert net._tables is None


@pytest.mark.parametrize(
    "channels,attention,windows,tables",
    [
        (("global", "local"), "soft", (1, 2, 3), True),
        (("global", "local"), "hard", (1, 2, 3), True),
        (("global",), "soft", (2, 4), True),
        (("local",), "soft", (1,), True),
        (("global", "local"), "soft", (1, 2, 3), False),
    ],
)
def test_a_packed_batch_gives_the_padded_batchs_h_and_trigger_weights(
    channels, attention, windows, tables, monkeypatch
):
    torch.manual_seed(1)
    cfg = ACNNConfig(channels=channels, attention=attention, windows=windows, dim=8, n_maps=4, local_dim=6, hidden=5)
    net = ACNNNet(n_words=30, n_labels=7, cfg=cfg).eval()
    if not tables:  # the products path, as for a vocabulary too large for tables
        monkeypatch.setattr(acnn_fast, "TABLE_BYTES", 0)
    rows = [[3, 4, 5, 6], [7], [8, 9, 10, 11, 12, 13, 14, 15, 16], [17, 18], [1, 1, 2]]
    x = pad(rows)
    batch = pack(rows, net.gap)
    assert batch.row[0].tolist() == [3, 4, 5, 6] + [0] * net.gap + [7] + [0] * net.gap + rows[2] + [0] * net.gap + [
        17,
        18,
    ] + [0] * net.gap + [1, 1, 2]
    with torch.inference_mode():
        torch.testing.assert_close(acnn_fast.packed_features(net, batch), net.features(x))
        if "local" in channels:
            padded = net.local.weights(net.window_sums(x)[-1], x != 0)
            for a, expected, r in zip(acnn_fast.trigger_weights(net, batch), padded, rows):
                torch.testing.assert_close(torch.from_numpy(a), expected[: len(r)])
    assert (net._tables is None) == (not tables)


@pytest.mark.parametrize("n,k", [(8257, 5), (8257, 1), (4096, 3), (100, 5), (1000, 100)])
def test_top_k_rows_equals_torch_topk(n, k):
    torch.manual_seed(n + k)
    z = torch.randn(40, n)
    z[:5, -3:] += 10  # the best in the tail past the last whole slice
    z[5:10, :3] += 10  # the best in the first slice
    top, idx = top_k_rows(z, k)
    expected_top, expected_idx = z.topk(k, dim=1)
    assert torch.equal(top, expected_top) and torch.equal(idx, expected_idx)


def test_pad_fills_short_rows():
    assert pad([[3, 4, 5], [6], [7, 8]]).tolist() == [[3, 4, 5], [6, 0, 0], [7, 8, 0]]


@pytest.mark.parametrize("hard", [False, True])
def test_one_word_post_keeps_its_word(hard):
    att, _, _ = five_word_attention(hard=hard)
    # every score of a one-word post ties: eta = 0.8 s + 0.2 s, which rounds above s for some s
    x = torch.linspace(-3, 3, 601).view(601, 1, 1)
    a = att.weights(x, torch.ones(601, 1, dtype=torch.bool))
    assert a.eq(1).all()


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_shapes_and_gradient_to_the_attention_filter(attention):
    cfg = ACNNConfig(dim=8, n_maps=4, local_dim=6, hidden=5, attention=attention, dropout=0.0)
    net = ACNNNet(n_words=20, n_labels=7, cfg=cfg)
    x = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 11, 12], [2, 0, 0, 0, 0, 0]])
    y = torch.tensor([[1, 4], [2, -1], [6, -1]])
    logits, loss = net(x, y)
    assert logits.shape == (3, 7) and net.features(x).shape == (3, 5)
    assert [len(a) for a in net.trigger_weights([[3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [2]])] == [4, 6, 1]
    loss.backward()
    grad = net.local.score.weight.grad
    if attention == "soft":
        assert grad is not None and grad.abs().sum() > 0
    else:  # the paper's 0/1 selection: no gradient reaches M_a
        assert grad is None or grad.abs().sum() == 0


def test_pairs_and_soft_targets_agree_on_one_hashtag_posts():
    torch.manual_seed(0)
    nets = {t: ACNNNet(20, 7, ACNNConfig(dim=8, n_maps=4, hidden=5, dropout=0.0, target=t)) for t in ("pairs", "soft")}
    nets["soft"].load_state_dict(nets["pairs"].state_dict())
    x = torch.tensor([[3, 4, 5], [7, 8, 0]])
    one = torch.tensor([[1], [2]])
    assert torch.allclose(nets["pairs"](x, one)[1], nets["soft"](x, one)[1])
    two = torch.tensor([[1, 4], [2, -1]])  # pairs: 3 pairs weigh equally; soft: 2 posts weigh equally
    assert not torch.allclose(nets["pairs"](x, two)[1], nets["soft"](x, two)[1])


def test_word2vec_vectors_wider_than_w2v_std_are_scaled_down_to_it(weibo_sample):
    posts = weibo_sample["train"][:300]
    params = dict(TINY, epochs=1, static_embeddings=True)  # static: the vectors stay as initialised
    raw, narrower, wider = (
        create("acnn", **params, w2v_std=std).fit(posts).net_.embed.weight.detach()[2:] for std in (0.0, 0.02, 1.0)
    )
    assert 0.02 < float(raw.std()) < 1.0  # gensim's own scale: 0.05 here, 0.23 on all of Weibo
    assert float(narrower.std()) == pytest.approx(0.02, rel=1e-4)
    torch.testing.assert_close(narrower, raw * (0.02 / raw.std()))  # the same vectors, scaled down
    torch.testing.assert_close(wider, raw)  # never scaled up


@pytest.fixture(scope="module")
def trained(weibo_sample) -> dict:
    train = weibo_sample["train"][:2000]  # no dev: keep the last epoch
    return {name: create(name, **TINY).fit(train) for name in ("acnn", "cnn", "attention")}


@pytest.mark.parametrize("name", ["acnn", "cnn", "attention"])
def test_learns_from_the_text(trained, weibo_sample, name):
    """Each channel learns hashtags from words: far above the popularity floor on its training posts.

    Not on held-out posts: 2,000 Weibo posts carry 1,933 hashtags, and on this slice none of the
    three networks (nor fastText) beats popularity on test (measured F1@1 0.0125-0.02 vs 0.02);
    the held-out comparison is docs/results/acnn.md on the full benchmarks.
    """
    seen = weibo_sample["train"][:300]
    floor = create("popularity").fit(weibo_sample["train"][:2000]).evaluate(seen)[1].f1
    model = trained[name]
    assert model.name == name and len(model.history_) == TINY["epochs"]
    assert model.evaluate(seen)[1].f1 > floor + 0.1, (name, model.history_)


def test_explain_lists_kept_words_heaviest_first(trained):
    out = trained["acnn"].explain(TEXTS)
    assert len(out) == len(TEXTS) and out[2] == []
    for text, triggers in zip(TEXTS[:2], out[:2]):
        assert triggers, text
        weights = [w for _, w in triggers]
        assert weights == sorted(weights, reverse=True) and all(0 < w <= 1 for w in weights)
        assert all(word in text for word, _ in triggers)
    assert trained["attention"].supports_explain and not trained["cnn"].supports_explain
    with pytest.raises(ConfigError, match="no attention to explain"):
        trained["cnn"].explain(TEXTS)


def test_recommend_explain_end_to_end(trained, tmp_path):
    trained["acnn"].save(tmp_path / "m")
    (item,) = api.recommend(tmp_path / "m", TEXTS[0], k=3, explain=True)
    assert len(item["hashtags"]) == 3 and item["triggers"] and set(item["triggers"][0]) == {"word", "weight"}
    cli = [
        sys.executable,
        "-m",
        "hashrec",
        "recommend",
        "--model",
        str(tmp_path / "m"),
        TEXTS[0],
        "-k",
        "2",
        "--explain",
    ]
    text = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert text.count("#") == 2 and "triggers: " in text
    line = subprocess.run(cli + ["--json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(line)["triggers"] == item["triggers"]
    trained["cnn"].save(tmp_path / "c")
    cnn = subprocess.run(cli[:5] + [str(tmp_path / "c"), TEXTS[0], "--explain"], capture_output=True, text=True)
    assert cnn.returncode == 1 and "no attention to explain" in cnn.stderr


RUN = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from hashrec.data import load_split
from hashrec.models import create
model = create("acnn", **{params})
model.checkpoint_dir = Path(sys.argv[1])
model.fit(load_split("{sample}", "train")[:1000], load_split("{sample}", "dev")[:200])
"""


def test_sigkill_mid_training_then_resume_gives_the_same_model(weibo_sample, tmp_path):
    params = dict(TINY, epochs=4, patience=10)
    train, dev = weibo_sample["train"][:1000], weibo_sample["dev"][:200]
    ckpt = tmp_path / "ckpt"
    script = RUN.format(params=params, sample=ROOT / "data" / "sample" / "weibo")
    proc = subprocess.Popen([sys.executable, "-c", script, str(ckpt)], stderr=subprocess.DEVNULL)
    try:
        while not (ckpt / CHECKPOINT).exists() and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the first epoch is saved; the second is under way
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(ckpt / CHECKPOINT, weights_only=True)["epoch"] < params["epochs"]

    resumed = create("acnn", **params)
    resumed.checkpoint_dir, resumed.resume = ckpt, True
    resumed.fit(train, dev)
    straight = create("acnn", **params).fit(train, dev)
    assert [h["dev_f1@1"] for h in resumed.history_] == [h["dev_f1@1"] for h in straight.history_]
    for key, value in straight.net_.state_dict().items():
        torch.testing.assert_close(resumed.net_.state_dict()[key], value, rtol=1e-5, atol=1e-7, msg=key)


def test_resume_refuses_a_checkpoint_of_another_config(weibo_sample, tmp_path):
    train, dev = weibo_sample["train"][:300], weibo_sample["dev"][:50]
    first = create("cnn", **dict(TINY, epochs=1))
    first.checkpoint_dir = tmp_path
    first.fit(train, dev)
    other = create("cnn", **dict(TINY, epochs=1, seed=1))
    other.checkpoint_dir, other.resume = tmp_path, True
    with pytest.raises(ConfigError, match="another config"):
        other.fit(train, dev)


@pytest.mark.parametrize("bad", [dict(channels=()), dict(channels=("local", "x")), dict(h=4), dict(delta=1.5)])
def test_bad_config_says_what_is_allowed(bad):
    with pytest.raises(ConfigError):
        create("acnn", **bad)


def test_represent_gives_the_scores_and_h(trained):
    model = trained["acnn"]
    docs = [["武汉", "加油"], [], ["疫情"]]
    p, h = model.represent(docs)
    assert p.shape == (3, len(model.labels_)) and h.shape == (3, TINY["hidden"])
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)  # labels outside the softmax score 0
    np.testing.assert_array_equal(p, model._scores(docs))
    more = docs + [["钟南山", "说", "疫情", "拐点", "还", "没有", "到来"]] * 2  # hidden sorts by length
    np.testing.assert_allclose(model.hidden(more), model.represent(more)[1], atol=1e-6)


def test_top_k_on_the_logits_equals_the_softmax_ranking(trained, weibo_sample):
    """`_top_k` (topk of the logits, length-sorted batches) = the top of the full softmax, in input order."""
    model = trained["acnn"]
    docs = tokenize_many([p.text for p in weibo_sample["test"][:300]])
    n_out = model.net_.out.out_features
    idx, vals = model._top_k(docs, 5)
    ref_idx, ref_vals = top_k(model.represent(docs)[0].astype(np.float64), 5)
    np.testing.assert_allclose(vals, ref_vals, rtol=1e-4, atol=1e-7)
    assert (idx == ref_idx).mean() > 0.99  # exact ties may order differently
    # asking for more hashtags than the softmax holds appends the rest, scored 0
    assert n_out < len(model.labels_)  # the tiny model leaves hashtags seen once out of its softmax
    idx, vals = model._top_k(docs[:2], n_out + 3)
    assert idx.shape == (2, min(n_out + 3, len(model.labels_)))
    assert set(idx[0, n_out:]) == set(range(n_out, idx.shape[1])) and not vals[:, n_out:].any()


def test_each_epoch_logs_a_line_with_its_time_and_what_is_left(weibo_sample, capsys):
    from conftest import TINY_ACNN

    create("acnn", **{**TINY_ACNN, "epochs": 2}).fit(weibo_sample["train"][:300], weibo_sample["dev"][:50])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("acnn epoch")]
    assert len(lines) == 2 and all(re.search(r"\d+ s an epoch, at most \d+ s left$", line) for line in lines)
    assert lines[1].endswith("at most 0 s left")
