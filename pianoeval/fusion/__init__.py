"""The fusion track: frozen encoders' frames (``frames``) paired per segment (``data``);
the fusion models themselves are in ``pianoeval.models.fusion``."""
