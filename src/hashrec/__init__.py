"""hashrec: hashtag recommendation for microblog posts (Gong & Zhang, IJCAI 2016, and its baselines).

Pipeline: raw posts -> `data` (hashtags, clean text, splits) -> `tokens` -> `models` (one
`Recommender` interface) -> ranked hashtags -> `metrics` (Eq. 11). See `hashrec.api` for the
Python functions behind each command.
"""

__version__ = "0.1.0"
