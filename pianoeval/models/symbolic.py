"""The symbolic track's model families (S1, S2, S2H, S3), by pre-training name.

Each family lives in its own module (``symbolic_remi``, ``symbolic_gnn``,
``symbolic_hetero``, ``symbolic_curves``) with its encoder, pre-training objective and
GPU size; their configs and registered variants are in ``pianoeval.models.configs.symbolic``.
``ENCODERS`` maps the pre-training names (``s1`` ...) to those modules and the registered
variant whose architecture is the default.
"""

from __future__ import annotations

from pianoeval.models import symbolic_curves, symbolic_gnn, symbolic_hetero, symbolic_remi

#: pre-training name -> (family module, representation kind, default registered variant)
ENCODERS = {
    "s1": (symbolic_remi, "tokens", "s1_remi"),
    "s2": (symbolic_gnn, "graphs", "s2_gnn"),
    "s2h": (symbolic_hetero, "graphs", "s2h_hetero"),
    "s3": (symbolic_curves, "curves", "s3_continuous"),
}

#: registered name -> the model overrides of its GPU default size (the CPU size is the variant's own)
GPU_SIZES = {variant: module.GPU_SIZE for module, _, variant in ENCODERS.values()}
