"""The audio track: rendering, augmentation, backbones, caches, tiers, pre-training.

    >>> from pianoeval.audio import RenderJob, render_many, AudioAugmentor, AugmentConfig
    >>> from pianoeval.audio import load_backbone, pretrain_backbone, AudioDataModule

Modules: ``render`` (FluidSynth, render cache), ``augment`` (the augmentation suite),
``features`` (log-mel cache), ``backbones`` (MuQ-architecture conformer), ``checkpoint``
(MuQ's and our checkpoint format), ``source`` (which backbone a config means),
``hidden_cache`` (frozen layers run once), ``asap`` (T3 windows), ``data`` (AudioBatch,
AudioDataModule), ``lora`` (peft adapters), ``pretrain`` / ``stage1`` (self-supervised
training). The registered models are in ``pianoeval.models.audio``; see docs/audio.md.

Names are resolved lazily (on first use), so importing one module of the package does not
import all of them (rendering, augmentation, backbones: each pulls its own heavy stack).
"""

from importlib import import_module

_EXPORTS = {
    "SOUNDFONTS": "render", "RenderJob": "render", "Renderer": "render", "render_many": "render",
    "load_render": "render", "soundfont_path": "render",
    "AudioAugmentor": "augment", "AugmentConfig": "augment",
    "AudioItem": "features", "Frontend": "features", "MelStore": "features", "build_mels": "features",
    "BackboneSpec": "backbones", "ConformerBackbone": "backbones", "MelFrontend": "backbones",
    "load_backbone": "checkpoint", "save_backbone": "checkpoint", "write_muq_checkpoint": "checkpoint",
    "checkpoint_spec": "checkpoint",
    "BackboneSource": "source", "backbone_source": "source", "pretrained_dir": "source",
    "build_hidden": "hidden_cache",
    "AsapWindow": "asap", "asap_windows": "asap",
    "AudioBatch": "data", "AudioDataConfig": "data", "AudioDataModule": "data",
    "attach_lora": "lora",
    "SSLConfig": "pretrain", "pretrain_backbone": "pretrain",
    "load_or_run_stage1": "stage1",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # lazy: a name's module is imported when the name is first used
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pianoeval.audio' has no attribute {name!r}")
    return getattr(import_module(f"pianoeval.audio.{_EXPORTS[name]}"), name)
