"""The HTTP service: hashtag recommendations as JSON, and a compose-box page at `/`.

`create_app(model)` loads a saved model once and answers

- `POST /recommend`        `{"text", "k", "explain", "min_confidence"}` -> `api.recommend`'s answer:
                           `{"text", "hashtags": [{"hashtag", "score", "confidence"}], "triggers"?}`
- `POST /recommend/batch`  `{"texts": [...], "k", "min_confidence"}` -> `{"results": [...]}` (at most `max_batch`)
- `GET  /model`            name, training data, label count, saved metrics, hyperparameters, limits,
                           calibration, the default `min_confidence`
- `GET  /health`           `{"status": "ok"}`
- `POST /posts`            with `--state` and an ingest token: `{"posts": [{"text", "hashtags", "time"?, "user"?}]}`
                           -> 201 `{"accepted", "last_id"}`, logged durably first (`live`)
- `GET  /trending`         with `--state`: `?window=1h&k=20` -> the hashtags rising in the window
- `GET  /docs`             the OpenAPI page; `/openapi.json` the schema

Scores are the model's own (`Recommender._scores`, higher is better): probabilities for some models,
log-probabilities or unbounded values for others; `confidence` is the calibrated probability that
the author used the hashtag (hashrec.calibration; null for an uncalibrated model), and it is what
the page shows. Bad input is a 4xx, never a 5xx: schema violations (empty or blank text, text over
`max_text_chars`, k outside 1..max_k, wrong types, unknown fields, malformed JSON) are 422 with
FastAPI's `{"detail": [{"loc", "msg", ...}]}`; a body over `max_body_bytes` is 413, refused from its
Content-Length before reading and otherwise as soon as the bytes read pass the limit; a
`HashrecError` (e.g. `explain` on a model without attention) is 422 with `{"detail": message}`;
a body that is not UTF-8 is FastAPI's 400. Anything else is a bug: 500 with `{"detail"}`, logged.

The scoring endpoints are `async`; `Batcher` runs the model on one thread of its own, so scoring
never blocks the event loop, and scores the posts of requests that arrive meanwhile in the same
call (micro-batching). `hashrec serve --workers N` runs N processes,
each with its own copy of the model.

Modules: `schemas` (request and response models), `batching` (`Batcher`, the model caller),
`fastpath` (`FastRecommend`, the ASGI fast path), `app` (`create_app` and its routes), `workers`
(`serve`, one process or several), `inprocess` (`running`, a background thread for tests), `live`
(the post log's ingest, tail and trending routes: the server that learns).
"""

from hashrec.server.app import create_app
from hashrec.server.batching import Batcher
from hashrec.server.fastpath import FastRecommend
from hashrec.server.inprocess import running
from hashrec.server.workers import serve

__all__ = ["Batcher", "FastRecommend", "create_app", "running", "serve"]
