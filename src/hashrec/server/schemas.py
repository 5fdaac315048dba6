"""The JSON bodies of the HTTP service: pydantic request and response models, and the error answers.

Strict (`"5"` is not a k, 1 is not a text) and closed (a misspelt field is an error, not ignored).
The request models carry the app's limits in their schema (`request_models`), so /docs and
fuzzers see them.
"""

# No `from __future__ import annotations`: pydantic and FastAPI must see the classes, not their names.
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

# Strict: "5" is not a k and 1 is not a text; forbid: a misspelt field ("top_k") is an error, not ignored.
STRICT = ConfigDict(strict=True, extra="forbid")
NON_BLANK = r"\S"  # Python's re, as the validator below; the schema carries it for fuzzers and clients


def _not_blank(text: str) -> str:
    if not re.search(NON_BLANK, text):
        raise PydanticCustomError("blank_text", "text is empty or only white space; write a post")
    return text


class Hashtag(BaseModel):
    hashtag: str
    score: float = Field(description="the model's score, higher is better; its scale depends on the model")
    confidence: float | None = Field(
        description="calibrated probability that the author used the hashtag; "
        "null for a model without calibration (GET /model: calibration)"
    )


class Trigger(BaseModel):
    word: str
    weight: float = Field(description="attention weight of the word")


class Recommendation(BaseModel):
    text: str
    hashtags: list[Hashtag]
    triggers: list[Trigger] | None = Field(None, description="only with explain=true")


class BatchRecommendation(BaseModel):
    results: list[Recommendation]


class Limits(BaseModel):
    max_k: int
    max_batch: int
    max_text_chars: int
    max_body_bytes: int


class ModelInfo(BaseModel):
    name: str
    labels: int = Field(description="how many hashtags the model knows")
    supports_explain: bool
    trained_on: dict[str, Any]
    metrics: dict[str, Any] = Field(description="the metrics it was saved with (dev F1@k)")
    config: dict[str, Any]
    limits: Limits
    calibration: dict[str, Any] | None = Field(
        description="how the confidence was calibrated (held-out posts); null: the model has none, confidence is null"
    )
    min_confidence: float | None = Field(description="the threshold a request gets when it names none")
    hashrec_version: str
    live: dict[str, Any] | None = Field(
        None,
        description="with --state: the post log (log_posts, log_last_id), "
        "how far this worker learned (learned_up_to), the posts the model holds "
        "(index_posts) and --window-days",
    )


class Health(BaseModel):
    status: str


def request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """The two request bodies, with this app's limits in their schema (so /docs and fuzzers see them)."""
    text = Annotated[
        str,
        Field(min_length=1, max_length=limits.max_text_chars, json_schema_extra={"pattern": NON_BLANK}),
        AfterValidator(_not_blank),
    ]
    k = Annotated[int, Field(ge=1, le=limits.max_k, description="how many hashtags to return")]
    threshold = (
        Annotated[float, Field(ge=0, le=1)] | None,
        Field(
            None,
            description=(
                "leave out hashtags whose confidence is below it, so that the list may be empty; absent: the "
                "server's default (GET /model: min_confidence); a model without calibration answers 422"
            ),
        ),
    )
    single = create_model(
        "RecommendRequest",
        __config__=STRICT,
        text=(text, ...),
        k=(k, 5),
        explain=(
            bool,
            Field(
                False, description="also return trigger words; models with attention only (see GET /model), else 422"
            ),
        ),
        min_confidence=threshold,
    )
    batch = create_model(
        "BatchRequest",
        __config__=STRICT,
        k=(k, 5),
        min_confidence=threshold,
        texts=(list[text], Field(..., min_length=1, max_length=limits.max_batch)),
    )
    return single, batch


DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "body is not text (not UTF-8), so not JSON at all", "content": DETAIL},
    413: {"description": "request body larger than max_body_bytes", "content": DETAIL},
    422: {"description": "invalid request, or a model error (HashrecError) with its message", "content": DETAIL},
}


def internal_error(exc: Exception) -> str:
    return f"internal error ({type(exc).__name__}); see the server log"
