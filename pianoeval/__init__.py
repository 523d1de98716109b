"""pianoeval: sweeps and ablations for piano-performance evaluation models.

The library behind ``runners/``: the PercePiano data layer (``pianoeval.data``),
registered models (``pianoeval.models``), the Lightning training loop
(``pianoeval.train``), the Ray Tune sweep engine (``pianoeval.sweep``) and the
ablation / staged-elimination machinery (``pianoeval.ablation``).
"""

__version__ = "0.1.0"
