#!/usr/bin/env bash
# The main job on the bundled sample: install, train the best model that exists, evaluate it,
# recommend hashtags for a few example posts. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=${MODEL:-knn}  # the best measured model (docs/RESULTS.md); MODEL=nb bash scripts/demo.sh picks another
H=.venv/bin/hashrec
$H train --model "$MODEL" --data data/sample/weibo --out runs/demo-weibo
$H evaluate --model runs/demo-weibo --data data/sample/weibo/test.jsonl.gz
$H recommend --model runs/demo-weibo -k 3 "钟南山院士说疫情拐点还没有到来，大家继续做好防护" "武汉的医护人员辛苦了，致敬逆行者"
$H train --model "$MODEL" --data data/sample/tweeteval --out runs/demo-tweeteval
$H evaluate --model runs/demo-tweeteval --data data/sample/tweeteval/test.jsonl.gz
$H recommend --model runs/demo-tweeteval -k 3 "Happy birthday to my best friend, love you" "Sunset at the beach in Santa Monica"
