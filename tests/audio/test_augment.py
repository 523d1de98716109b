"""Each augmentation changes the audio in the intended way; the suite is seeded."""

import numpy as np
import pytest
import scipy.signal

from pianoeval.audio.augment import (AudioAugmentor, AugmentConfig, add_noise, apply_room, compress, equalise,
                                     phone, pitch_shift, rir_bank)

SR = 24_000


def tone(freq=440.0, seconds=1.0, amp=0.2):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def band_energy(x, low, high):
    freqs, power = scipy.signal.welch(x, SR, nperseg=4096)
    return power[(freqs >= low) & (freqs < high)].sum()


def peak_frequency(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return np.fft.rfftfreq(8 * len(x), 1 / SR)[spectrum.argmax()]


def test_phone_low_pass_removes_energy_above_8_khz():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    y = phone(x, SR, cutoff_hz=8000.0, distortion=0.1)
    before = band_energy(x, 9000, 12000) / band_energy(x, 1000, 4000)
    after = band_energy(y, 9000, 12000) / band_energy(y, 1000, 4000)
    assert after < before * 1e-2  # > 20 dB less energy above the cutoff, relative to the pass band


@pytest.mark.parametrize("snr_db", [10.0, 20.0, 30.0])
def test_noise_hits_the_requested_snr(snr_db):
    x = tone(seconds=2.0)
    y = add_noise(x, SR, snr_db, f_decay=-3.0)
    noise = y - x
    measured = 20 * np.log10(np.sqrt(np.mean(x ** 2)) / np.sqrt(np.mean(noise ** 2)))
    assert abs(measured - snr_db) < 0.5


@pytest.mark.parametrize("cents", [-50.0, 50.0])
def test_pitch_shift_moves_a_tone_by_the_cents_asked(cents):
    x = tone(440.0, seconds=2.0)
    y = pitch_shift(x, SR, cents)
    assert len(y) == len(x)
    moved = 1200 * np.log2(peak_frequency(y[SR // 2: -SR // 2]) / peak_frequency(x[SR // 2: -SR // 2]))
    assert abs(moved - cents) < 10  # Signalsmith Stretch is within a few cents


def test_room_adds_a_reverberant_tail():
    click = np.zeros(SR, np.float32)
    click[100] = 1.0
    wet = apply_room(click, rir_bank(2, SR, seed=1)[0])
    late = np.sum(wet[100 + SR // 20:] ** 2)  # energy more than 50 ms after the click
    assert late > 0.01 * np.sum(wet ** 2) and np.sum(click[100 + SR // 20:] ** 2) == 0


def test_eq_changes_the_three_bands_by_the_gains_asked():
    rng = np.random.default_rng(1)
    x = (0.05 * rng.standard_normal(2 * SR)).astype(np.float32)
    y = equalise(x, SR, low_db=6.0, mid_db=-6.0, high_db=6.0, low_hz=200.0, mid_hz=1000.0, high_hz=6000.0)
    gain = lambda lo, hi: 10 * np.log10(band_energy(y, lo, hi) / band_energy(x, lo, hi))  # noqa: E731
    assert gain(30, 100) > 3 and gain(900, 1100) < -3 and gain(9000, 11000) > 3


def test_compressor_narrows_the_gap_between_loud_and_quiet_passages():
    x = tone(seconds=1.0, amp=0.01)
    x[SR // 2:] *= 20  # the second half is 26 dB louder
    y = compress(x, SR)
    gap = lambda s: 20 * np.log10(np.sqrt(np.mean(s[-SR // 4:] ** 2)) / np.sqrt(np.mean(s[: SR // 4] ** 2)))  # noqa: E731
    assert gap(x) == pytest.approx(26.0, abs=0.1)
    assert gap(y) < gap(x) - 10  # 4:1 above -20 dB: the loud half loses about 15 dB


def test_suite_is_deterministic_in_the_seed_and_follows_its_probabilities():
    augmentor = AudioAugmentor(AugmentConfig(rir_bank_size=2), SR)
    x = tone(seconds=0.25)
    a, applied_a = augmentor(x, 5)
    b, applied_b = augmentor(x, 5)
    assert applied_a == applied_b and np.array_equal(a, b)
    silent = AudioAugmentor(AugmentConfig(p_room=0, p_noise=0, p_phone=0, p_pitch=0, p_eq=0), SR)
    assert np.array_equal(silent(x, 3)[0], x)
    assert augmentor(x, 11)[1] == augmentor.plan(11)
    plans = [augmentor.plan(seed) for seed in range(2000)]
    for name, p in (("room", 0.3), ("noise", 0.3), ("phone", 0.2), ("pitch", 0.1), ("eq", 0.2)):
        assert abs(sum(name in plan for plan in plans) / len(plans) - p) < 0.03, name
