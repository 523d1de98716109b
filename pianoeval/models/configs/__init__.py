"""Every model family's config class and its registered variants (``VARIANTS``), torch-free.

One module per family: ``han``, ``symbolic`` (S1-S3), ``audio`` (A1-A3, with the audio data
and augmentation blocks), ``fusion``, ``frames``, ``reference``; ``heads`` holds the fields
every encoder family shares. The registry (``pianoeval.models.registry``) collects the
variants; the model code each variant builds is named by import path and imported only when a
run builds it. ``tests/test_layers.py`` checks that nothing here imports torch.
"""
