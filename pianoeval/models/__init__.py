"""Registered models: the registry and its torch-free configs (``registry``, ``configs``), the
shared model parts (``heads``, ``attention``, ``segments``, ``output``, ``losses``) and one module
per model family (``han``, ``audio``, ``symbolic_*``, ``fusion``, ``frames``, ``reference``).

Importing this package imports nothing: a config is validated through ``registry`` without
importing torch, and a family's module is imported when a run builds one of its models."""
