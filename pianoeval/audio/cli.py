"""``runners/pretrain_audio.py``: pre-train the default ``pianoeval`` audio backbone."""

from __future__ import annotations

from dataclasses import replace

from pianoeval.audio.backbones import BackboneSpec
from pianoeval.audio.pretrain import SSLConfig, pretrain_backbone
from pianoeval.audio.source import pretrained_dir
from pianoeval.errors import ConfigError


def main(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    folder = pretrained_dir(args.name)
    if (folder / "config.json").is_file() and not args.force:
        print(f"[pretrain] {folder} exists; reusing it (--force to pre-train again)")
        return 0
    spec = BackboneSpec()
    for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
        if getattr(args, key) is not None:
            spec = replace(spec, **{key: getattr(args, key)})
    if spec.hidden_size % spec.num_heads:
        raise ConfigError(f"--hidden-size {spec.hidden_size} is not divisible by --num-heads {spec.num_heads}")
    config = SSLConfig()
    for key in ("steps", "window_seconds", "windows_per_performance", "max_pieces", "passages_per_batch", "lr",
                "positives"):
        if getattr(args, key) is not None:
            config = replace(config, **{key: getattr(args, key)})
    print(f"[pretrain] pianoeval audio backbone {args.name!r}: {spec.num_layers} conformer layers of width "
          f"{spec.hidden_size}; {config.steps} steps on ASAP windows of {config.window_seconds:g} s "
          f"({config.windows_per_performance} per performance) rendered with {', '.join(config.soundfonts)}")
    pretrain_backbone(folder, spec, config, workers=args.workers, progress=not args.no_progress)
    return 0
