"""IBM1 variants on weibo dev (first 3,000 dev posts)."""
import time
from hashrec.data import load_split
from hashrec.models import create
d = "../shared/benchmarks/weibo"  # run from the repository root
tr, dv = load_split(d, "train"), load_split(d, "dev")[:3000]
for p in ({}, {"iterations": 5}, {"iterations": 20}, {"min_count": 1}, {"lam": 0.8}, {"lam": 0.2}):
    t, c = time.perf_counter(), time.process_time()
    m = create("ibm1", **p).fit(tr)
    s = m.evaluate(dv)
    print(f"ibm1 {p}: dev F1@1 {s[1].f1:.4f} F1@5 {s[5].f1:.4f} (fit+dev {time.perf_counter()-t:.0f} s, {time.process_time()-c:.0f} s CPU)", flush=True)
