"""The registry: one name per recommender, for `--model`, the server, `compare` and the tests.

Entries are imported lazily so that `hashrec data ...` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from hashrec.errors import ConfigError

# name -> ("module:Class", default params that distinguish this name from its class's defaults)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "popularity": ("hashrec.models.popularity:Popularity", {}),
    "nb": ("hashrec.models.nb:NaiveBayes", {}),
    "lda": ("hashrec.models.lda:LDA", {}),
    "ibm1": ("hashrec.models.ibm1:IBM1", {}),
    "topicwa": ("hashrec.models.translation:TopicWA", {}),
    "ttm": ("hashrec.models.translation:TTM", {}),
    "knn": ("hashrec.models.knn:KNN", {}),
    "hknn": ("hashrec.models.knn:NetworkKNN", {}),
    "stream": ("hashrec.models.streaming:StreamKNN", {}),
    "fasttext": ("hashrec.models.fasttext_model:FastText", {}),
    "cnn": ("hashrec.models.acnn:ACNN", {"channels": ("global",)}),
    "attention": ("hashrec.models.acnn:ACNN", {"channels": ("local",)}),
    "acnn": ("hashrec.models.acnn:ACNN", {"channels": ("global", "local")}),
    "boost": ("hashrec.models.boost:Boost", {}),
}
# built on a trained model (--base), so `compare` does not train them from scratch
STACKED = ("hknn", "boost")


def model_class(name: str) -> type:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    module, _, cls = MODELS[name][0].partition(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, **params: Any):
    """A new, unfitted recommender `name` with its registry defaults, overridden by `params`."""
    return model_class(name)(**{**MODELS[name][1], **params})
