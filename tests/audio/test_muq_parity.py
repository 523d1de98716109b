"""pianoeval's MuQ loader checked against MuQ's own code (the test-only ``muq-parity`` extra).

A tiny random-weight MuQ is built with MuQ's own ``MuQ``/``MuQConfig`` (the ``muq`` package),
saved with MuQ's own ``save_pretrained`` (huggingface_hub's ``PyTorchModelHubMixin``:
config.json + model.safetensors, the published format) and loaded through
``pianoeval.audio.checkpoint.load_backbone``; both then hear the same rendered piano.

Skipped unless the extra is installed as docs/audio.md says (``pip install --no-deps --target
.cache/muq-parity ...``, then ``PYTHONPATH=.cache/muq-parity``). Around MuQ's code, this test:

* imports ``muq.muq`` (the audio model) without running ``muq/__init__.py``, which also imports
  MuQ-MuLan, whose text tower needs x_clip -> torchvision (a CUDA build on PyPI that does not
  load beside the CPU torch);
* runs ``MuQModel.get_predictions``'s steps itself (MuQ's ``preprocessing``, ``normalize``,
  ``conv``, ``conformer``, in that order), because MuQ 0.1.0 was written for transformers 4.x
  and its ``forward`` stops under transformers 5.23 at two places: its EasyDict conformer
  config has no ``_attn_implementation`` (set here to "eager", the plain attention MuQ's
  conformer computed), and the encoder no longer returns ``hidden_states``, so they are
  recorded with hooks: layer 1's input, the outputs of layers 1..L-1 and the final
  LayerNorm's output, i.e. transformers 4.x's ``hidden_states``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
import sys

import numpy as np
import pytest
import torch

from pianoeval.audio.backbones import MelFrontend
from pianoeval.audio.checkpoint import checkpoint_spec, load_backbone

if importlib.util.find_spec("muq") is None:  # find_spec: muq/__init__.py is never run, see above
    pytest.skip("muq not installed: the test-only extra muq-parity (pip install --no-deps, see docs/audio.md)",
                allow_module_level=True)
try:
    import torchaudio  # noqa: F401  (MuQ's mel front end)
except (ImportError, OSError) as err:
    pytest.skip(f"torchaudio does not import beside this torch ({type(err).__name__}: {err}); its PyPI wheel is a "
                f"CUDA build: remove its lib/*.so as docs/audio.md says (MuQ uses only its pure-Python transforms)",
                allow_module_level=True)

LAYERS = 12  # MuQ's depth, at a tiny width
HIDDEN_ATOL = 1e-5
# Two float32 mel spectrograms (nnAudio's conv STFT here, torch.stft in torchaudio) differ by
# rounding: on this test's audio by up to 2e-3 dB, each within 4e-4 dB of a float64 mel.
MEL_DB_ATOL = 5e-3
# ... which every hidden state carries: measured up to 4e-6 of the state's largest value
# (hidden state 0 reaches 300 with these random weights, the others 3-4).
END_TO_END_RTOL = 1e-4


@pytest.fixture(scope="module")
def muq_classes():
    package = importlib.util.module_from_spec(importlib.util.find_spec("muq"))  # not executed
    saved = {name: module for name, module in sys.modules.items() if name == "muq" or name.startswith("muq.")}
    sys.modules["muq"] = package
    try:
        module = importlib.import_module("muq.muq")
        yield module.MuQ, module.MuQConfig
    finally:
        for name in [name for name in sys.modules if name == "muq" or name.startswith("muq.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Every weight random (norms around 1), BatchNorm statistics too: a swapped or
    misnamed tensor cannot hide behind default initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            noise = torch.randn(tensor.shape, generator=generator) * (0.3 if tensor.dim() > 1 else 0.5)
            is_scale = name.endswith("weight") and tensor.dim() == 1  # LayerNorm / BatchNorm
            tensor.copy_(noise + (1.0 if is_scale else 0.0))
        for name, tensor in model.named_buffers():
            if name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


@pytest.fixture(scope="module")
def muq_and_folder(muq_classes, tmp_path_factory):
    """(MuQ's own model, the folder its own save_pretrained wrote)."""
    from transformers import Wav2Vec2ConformerConfig

    muq_class, config_class = muq_classes
    # the published w2v2_config is a whole Wav2Vec2ConformerConfig, as JSON
    w2v2 = json.loads(json.dumps(Wav2Vec2ConformerConfig(
        num_attention_heads=2, intermediate_size=64, conv_depthwise_kernel_size=5, hidden_act="swish",
        position_embeddings_type="rotary", rotary_embedding_base=10_000, layer_norm_eps=1e-5).to_dict()))
    config = config_class(codebook_size=64, conv_dim=4, encoder_dim=32, encoder_depth=LAYERS, w2v2_config=w2v2,
                          stat={"melspec_2048_cnt": 1, "melspec_2048_mean": 6.77, "melspec_2048_std": 18.42})
    python_state = random.getstate()
    with torch.random.fork_rng():  # MuQModel reseeds torch and random (its quantizer and cls token)
        model = muq_class(config)
    random.setstate(python_state)
    _randomize(model, seed=0)
    folder = tmp_path_factory.mktemp("muq_saved_by_muq")
    model.eval().save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module")
def piano(tmp_path_factory):
    """3 s of a real PercePiano performance rendered with FluidSynth, [1, samples] at 24 kHz."""
    from pianoeval.audio.render import RenderJob, load_render, render_many
    from pianoeval.data import load_percepiano

    data = load_percepiano(warn=lambda msg: None)
    job = RenderJob(data.segments[0].performance_midi(data.root), "timgm6mb", start=1.0, duration=3.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIANOEVAL_CACHE", str(tmp_path_factory.mktemp("cache")))
        done, report = render_many([job], workers=1, progress=False, warn=lambda msg: None)
    assert report.rendered + report.cached == 1
    return torch.from_numpy(np.ascontiguousarray(load_render(done[job])))[None]


def _muq_hidden_states(model, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """MuQ's dB mel and its hidden states 0..L (see the module docstring)."""
    inner = model.model
    inner.conformer.config._attn_implementation = "eager"
    states = []
    layers = list(inner.conformer.layers)
    hooks = [layers[0].register_forward_pre_hook(lambda module, args: states.append(args[0].clone()))]
    hooks += [layer.register_forward_hook(lambda module, args, out: states.append(out.clone()))
              for layer in layers[:-1]]
    try:
        with torch.no_grad():
            mel_db = inner.preprocessing(audio, features=["melspec_2048"])["melspec_2048"]
            normalized = inner.normalize({"melspec_2048": mel_db.clone()})["melspec_2048"]
            last = inner.conformer(inner.conv(normalized)).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()
    return mel_db, [*states, last]


def test_muq_config_maps_onto_the_backbone_spec(muq_and_folder):
    model, folder = muq_and_folder
    spec, config = checkpoint_spec(folder), model.config
    assert (spec.kind, spec.hidden_size, spec.num_layers, spec.conv_channels) == ("muq", 32, LAYERS, 4)
    assert (spec.num_heads, spec.intermediate_size, spec.conv_kernel) == (2, 64, 5)
    assert (spec.n_mels, spec.hop_length) == (config.n_mels, config.hop_length)
    assert (spec.n_fft, spec.sample_rate) == (2048, 24_000)
    assert (spec.db_mean, spec.db_std) == (6.77, 18.42)


def test_hidden_states_equal_muq_layer_by_layer(muq_and_folder, piano):
    """Same dB mel in (MuQ's): hidden states 0..12 within 1e-5 (standardisation, conv front
    end, every conformer layer, rotary embeddings, the final LayerNorm)."""
    model, folder = muq_and_folder
    mel_db, expected = _muq_hidden_states(model, piano)
    ours = load_backbone(folder).eval()
    with torch.no_grad():
        states, mask = ours.hidden_states(mel_db, torch.tensor([mel_db.shape[-1]]))
    assert len(states) == len(expected) == LAYERS + 1 and bool(mask.all())
    differences = [(ours_k - muq_k).abs().max().item() for ours_k, muq_k in zip(states, expected)]
    assert max(differences) <= HIDDEN_ATOL, f"max |ours - MuQ| per hidden state 0..{LAYERS}: {differences}"


def test_front_end_and_end_to_end_match_muq(muq_and_folder, piano):
    """Audio in: our nnAudio mel vs MuQ's torchaudio mel, then every hidden state."""
    model, folder = muq_and_folder
    mel_db, expected = _muq_hidden_states(model, piano)
    ours = load_backbone(folder).eval()
    with torch.no_grad():
        our_mel = MelFrontend(ours.spec)(piano)
        states, _ = ours.hidden_states(our_mel, torch.tensor([our_mel.shape[-1]]))
    assert our_mel.shape == mel_db.shape
    assert (our_mel - mel_db).abs().max().item() <= MEL_DB_ATOL
    relative = [((ours_k - muq_k).abs().max() / muq_k.abs().max()).item() for ours_k, muq_k in zip(states, expected)]
    assert max(relative) <= END_TO_END_RTOL, f"max |ours - MuQ| / max |MuQ| per hidden state 0..{LAYERS}: {relative}"
