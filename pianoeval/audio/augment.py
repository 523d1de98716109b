"""The audio augmentation suite of the v2 design, applied on the fly and seeded.

| augmentation          | p   | parameters (drawn per call)                                       |
|-----------------------|-----|-------------------------------------------------------------------|
| room impulse response | 0.3 | one of ``rir_bank_size`` rooms simulated with pyroomacoustics      |
|                       |     | (shoebox 3-12 x 3-10 x 2.5-4.5 m, RT60 0.2-1.0 s, image source)    |
| additive noise        | 0.3 | coloured noise (audiomentations AddColorNoise), SNR 10-30 dB,      |
|                       |     | spectral decay -6..+6 dB/octave (blue .. brown)                    |
| phone mic             | 0.2 | 8 kHz Butterworth low-pass (48 dB/oct) + 200 Hz high-pass, a 4:1   |
|                       |     | compressor (threshold -20 dB), tanh distortion 0.05-0.25           |
| pitch shift           | 0.1 | +-50 cents (audiomentations PitchShift, Signalsmith Stretch)       |
| 3-band EQ             | 0.2 | low shelf 80-300 Hz, peak 300-4000 Hz, high shelf 3-8 kHz,         |
|                       |     | each -6..+6 dB (audiomentations shelf / peaking filters)           |

The design's noise corpus (ESC-50) and measured impulse responses (MIT IR Survey,
EchoThief) cannot be downloaded here: noise is generated coloured noise and rooms are
simulated. The compressor is a few lines of scipy (audiomentations' ``Limiter`` needs
``numpy-audio-limiter``, not a project dependency). Transforms run in the order of the
table; each is drawn independently, so a call may apply none.

``AudioAugmentor(config)(audio, seed)`` is deterministic in ``seed``: audiomentations
draws from Python's and numpy's global generators, which are seeded for the call and
restored afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass

import numpy as np
import scipy.signal

from pianoeval.io import atomic_write
from pianoeval.models.configs.audio import AugmentConfig
from pianoeval.paths import cache_root

AUGMENTATIONS = ("room", "noise", "phone", "pitch", "eq")
#: Bump when a transform's code changes what it produces (part of the feature cache key).
AUGMENT_VERSION = "2"


def augment_key(config: AugmentConfig) -> str:
    """Cache key part of an augmentation config (and of the transforms' code version)."""
    return hashlib.sha256(f"{AUGMENT_VERSION}|{config.model_dump_json()}".encode()).hexdigest()[:12]


@contextlib.contextmanager
def seeded(seed: int):
    """Seed Python's and numpy's global generators, restoring them afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


# --- the five transforms (explicit parameters, so each can be tested alone) ------------
def apply_room(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with a room impulse response (peak-normalised), same length out."""
    wet = scipy.signal.oaconvolve(audio, rir / np.abs(rir).max(), mode="full")[: len(audio)]
    return wet.astype(np.float32)


def add_noise(audio: np.ndarray, sample_rate: int, snr_db: float, f_decay: float) -> np.ndarray:
    """Coloured noise at ``snr_db`` (decay ``f_decay`` dB/octave: 0 white, -3 pink, +3 blue...)."""
    from audiomentations import AddColorNoise

    transform = AddColorNoise(min_snr_db=snr_db, max_snr_db=snr_db, min_f_decay=f_decay, max_f_decay=f_decay, p=1.0)
    return transform(audio, sample_rate=sample_rate).astype(np.float32)


def compress(audio: np.ndarray, sample_rate: int, threshold_db: float = -20.0, ratio: float = 4.0,
             window_s: float = 0.005) -> np.ndarray:
    """Compressor: ``ratio``:1 above ``threshold_db`` (relative to the loudest moment), on a
    zero-phase smoothed power envelope (a look-ahead compressor: onsets are caught too),
    with make-up gain back to the input RMS."""
    sos = scipy.signal.butter(2, 1.0 / (2 * window_s), fs=sample_rate, output="sos")
    power = np.maximum(scipy.signal.sosfiltfilt(sos, audio.astype(np.float64) ** 2), 0.0)
    level_db = 10 * np.log10(np.maximum(power, 1e-12))
    over = np.maximum(level_db - (level_db.max() + threshold_db), 0.0)
    out = audio * 10 ** (-over * (1 - 1 / ratio) / 20)
    rms_in, rms_out = np.sqrt(np.mean(audio ** 2)), np.sqrt(np.mean(out ** 2))
    return (out * (rms_in / max(rms_out, 1e-12))).astype(np.float32)


def phone(audio: np.ndarray, sample_rate: int, cutoff_hz: float, distortion: float) -> np.ndarray:
    """Phone-microphone simulation: band limit, compression, soft clipping."""
    from audiomentations import HighPassFilter, LowPassFilter, TanhDistortion

    x = LowPassFilter(min_cutoff_freq=cutoff_hz, max_cutoff_freq=cutoff_hz, min_rolloff=48, max_rolloff=48,
                      zero_phase=False, p=1.0)(audio, sample_rate=sample_rate)
    x = HighPassFilter(min_cutoff_freq=200.0, max_cutoff_freq=200.0, min_rolloff=12, max_rolloff=12,
                       p=1.0)(x, sample_rate=sample_rate)
    x = compress(x, sample_rate)
    x = TanhDistortion(min_distortion=distortion, max_distortion=distortion, p=1.0)(x, sample_rate=sample_rate)
    # the distortion stage re-normalises loudness; the low-pass stays in effect (tanh adds
    # harmonics, so filter once more to keep the band limit of a phone)
    return LowPassFilter(min_cutoff_freq=cutoff_hz, max_cutoff_freq=cutoff_hz, min_rolloff=48, max_rolloff=48,
                         zero_phase=False, p=1.0)(x, sample_rate=sample_rate).astype(np.float32)


def pitch_shift(audio: np.ndarray, sample_rate: int, cents: float) -> np.ndarray:
    """Shift pitch by ``cents`` without changing duration (Signalsmith Stretch)."""
    from audiomentations import PitchShift

    transform = PitchShift(min_semitones=cents / 100, max_semitones=cents / 100, method="signalsmith_stretch", p=1.0)
    out = transform(audio, sample_rate=sample_rate)
    return np.pad(out, (0, max(0, len(audio) - len(out))))[: len(audio)].astype(np.float32)


def equalise(audio: np.ndarray, sample_rate: int, low_db: float, mid_db: float, high_db: float,
             low_hz: float, mid_hz: float, high_hz: float) -> np.ndarray:
    """3-band parametric EQ: low shelf, peaking band, high shelf."""
    from audiomentations import HighShelfFilter, LowShelfFilter, PeakingFilter

    x = LowShelfFilter(min_center_freq=low_hz, max_center_freq=low_hz, min_gain_db=low_db, max_gain_db=low_db,
                       min_q=0.7, max_q=0.7, p=1.0)(audio, sample_rate=sample_rate)
    x = PeakingFilter(min_center_freq=mid_hz, max_center_freq=mid_hz, min_gain_db=mid_db, max_gain_db=mid_db,
                      min_q=1.0, max_q=1.0, p=1.0)(x, sample_rate=sample_rate)
    x = HighShelfFilter(min_center_freq=high_hz, max_center_freq=high_hz, min_gain_db=high_db, max_gain_db=high_db,
                        min_q=0.7, max_q=0.7, p=1.0)(x, sample_rate=sample_rate)
    return x.astype(np.float32)


# --- simulated rooms -------------------------------------------------------------------
def simulate_rir(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One shoebox room impulse response (pyroomacoustics image-source method)."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 12), rng.uniform(3, 10), rng.uniform(2.5, 4.5)])
    rt60 = rng.uniform(0.2, 1.0)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 10))
    margin = 0.5
    room.add_source(rng.uniform(margin, dims - margin))
    room.add_microphone(rng.uniform(margin, dims - margin))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)
    return rir[: int(1.5 * sample_rate)]


def rir_bank(size: int, sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """``size`` simulated rooms, built once and cached under ``cache_root()/audio``."""
    import pyroomacoustics as pra

    key = hashlib.sha256(f"{size}|{sample_rate}|{seed}|{pra.__version__}|v1".encode()).hexdigest()[:12]
    path = cache_root() / "audio" / f"rir_bank-{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return [data[f"rir{i}"] for i in range(size)]
    rng = np.random.default_rng(seed)
    bank = [simulate_rir(rng, sample_rate) for _ in range(size)]
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **{f"rir{i}": r for i, r in enumerate(bank)}))
    return bank


@dataclass
class AudioAugmentor:
    """The suite; ``augmentor(audio, seed) -> (augmented, names of the applied transforms)``."""

    config: AugmentConfig
    sample_rate: int

    def __post_init__(self):
        self._rooms: list[np.ndarray] | None = None

    @property
    def rooms(self) -> list[np.ndarray]:
        if self._rooms is None:
            self._rooms = rir_bank(self.config.rir_bank_size, self.sample_rate)
        return self._rooms

    def _choose(self, rng: np.random.Generator) -> list[str]:
        cfg = self.config
        draws = rng.random(len(AUGMENTATIONS))
        probabilities = (cfg.p_room, cfg.p_noise, cfg.p_phone, cfg.p_pitch, cfg.p_eq)
        return [name for name, u, p in zip(AUGMENTATIONS, draws, probabilities) if u < p]

    def plan(self, seed: int) -> list[str]:
        """The transforms ``self(audio, seed)`` applies (each drawn with its probability)."""
        return self._choose(np.random.default_rng(seed))

    def __call__(self, audio: np.ndarray, seed: int) -> tuple[np.ndarray, list[str]]:
        cfg, sr = self.config, self.sample_rate
        rng = np.random.default_rng(seed)
        applied = self._choose(rng)
        x = np.asarray(audio, dtype=np.float32)
        with seeded(int(rng.integers(2**31))):
            if "room" in applied:
                x = apply_room(x, self.rooms[int(rng.integers(len(self.rooms)))])
            if "noise" in applied:
                x = add_noise(x, sr, rng.uniform(*cfg.snr_db), rng.uniform(-6.0, 6.0))
            if "phone" in applied:
                x = phone(x, sr, cfg.phone_cutoff_hz, rng.uniform(0.05, 0.25))
            if "pitch" in applied:
                x = pitch_shift(x, sr, rng.uniform(-cfg.pitch_cents, cfg.pitch_cents))
            if "eq" in applied:
                g = cfg.eq_gain_db
                x = equalise(x, sr, *rng.uniform(-g, g, size=3), low_hz=rng.uniform(80, 300),
                             mid_hz=float(np.exp(rng.uniform(np.log(300), np.log(4000)))),
                             high_hz=rng.uniform(3000, min(8000, 0.45 * sr)))
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32), applied
