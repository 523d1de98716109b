"""``HeadsConfig``: the shared pooling and heads' fields, inherited by every encoder family's config
(the modules themselves: ``pianoeval.models.heads``)."""

from __future__ import annotations

import pydantic

from pianoeval.config import StrictModel


class HeadsConfig(StrictModel):
    """Pooling and heads; encoder config classes inherit these fields (all sweepable).

    Attributes:
        z_dim: width of the shared embedding z (the design's 512).
        head_hidden: hidden width of the shared 2-layer MLP.
        head_dropout: dropout inside the MLP.
        pool_heads: heads of the attention pooling (must divide the encoder width).
        pool_temperature: attention temperature of the pooling (1.0 = plain softmax).
    """

    z_dim: int = pydantic.Field(512, ge=1)
    head_hidden: int = pydantic.Field(512, ge=1)
    head_dropout: float = pydantic.Field(0.1, ge=0.0, lt=1.0)
    pool_heads: int = pydantic.Field(8, ge=1)
    pool_temperature: float = pydantic.Field(1.0, gt=0.0)
