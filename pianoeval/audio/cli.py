"""``runners/pretrain_audio.py``: pre-train the default ``pianoeval`` audio backbone."""

from __future__ import annotations

from dataclasses import replace

from pianoeval.audio.backbones import BackboneSpec
from pianoeval.audio.pretrain import SSLConfig, pretrain_backbone
from pianoeval.audio.source import pretrained_dir
from pianoeval.errors import ConfigError

ALIGNED_STEPS = 1500  # the aligned objective's default budget (its steps are cheap: no pairs)


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
    weights = args.objective
    aligned = weights.get("aligned", 0.0) > 0
    config = SSLConfig(contrastive_weight=weights.get("contrastive", 0.0), aligned_weight=weights.get("aligned", 0.0),
                       steps=ALIGNED_STEPS if aligned else SSLConfig.steps,
                       percepiano_split=None if args.no_percepiano else "performer",
                       percepiano_fold=args.percepiano_fold)
    for key in ("steps", "window_seconds", "windows_per_performance", "max_pieces", "passages_per_batch", "lr",
                "positives", "items_per_batch", "seed"):
        if getattr(args, key) is not None:
            config = replace(config, **{key: getattr(args, key)})
    sources = f"ASAP windows of {config.window_seconds:g} s ({config.windows_per_performance} per performance)"
    if aligned and config.percepiano_split:
        sources += f" and PercePiano {config.percepiano_split} fold-{config.percepiano_fold} training segments"
    print(f"[pretrain] pianoeval audio backbone {args.name!r}: {spec.num_layers} conformer layers of width "
          f"{spec.hidden_size}; objective {config.objective}; {config.steps} steps on {sources} rendered with "
          f"{', '.join(config.soundfonts)}")
    pretrain_backbone(folder, spec, config, workers=args.workers, progress=not args.no_progress,
                      command=" ".join(["python", "runners/pretrain_audio.py", *args.argv]))
    return 0
