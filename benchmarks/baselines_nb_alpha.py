"""NB smoothing on weibo dev (first 3,000 dev posts): one fit, alpha swept on the counts."""
from hashrec.data import load_split
from hashrec.models import create
d = "../shared/benchmarks/weibo"  # run from the repository root
tr, dv = load_split(d, "train"), load_split(d, "dev")[:3000]
base = create("nb").fit(tr)
for a in (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001):
    m = create("nb", alpha=a)
    m.labels_, m.label_index_, m.label_counts_, m.vocab_ = base.labels_, base.label_index_, base.label_counts_, base.vocab_
    m._set_counts(base.counts_)
    s = m.evaluate(dv)
    print(f"alpha {a}: dev F1@1 {s[1].f1:.4f} F1@5 {s[5].f1:.4f}", flush=True)
