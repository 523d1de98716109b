"""Rendering real PercePiano MIDI with FluidSynth: cache keys, both soundfonts, bad input."""

import numpy as np
import pretty_midi
import pytest

from pianoeval.audio.render import SAMPLE_RATE, RenderJob, load_render, render_many


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIANOEVAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _midi(percepiano, k=0):
    return percepiano.segments[k].performance_midi(percepiano.root)


def test_excerpts_render_with_both_soundfonts_and_are_cached(percepiano, cache):
    midi = _midi(percepiano)
    jobs = [RenderJob(midi, sf, start=0.0, duration=2.0) for sf in ("timgm6mb", "musescore")]
    done, report = render_many(jobs, workers=1, progress=False, warn=lambda m: None)
    assert report.rendered == 2 and not report.skipped
    a, b = (load_render(done[j]) for j in jobs)
    assert a.dtype == np.float32 and a.ndim == 1
    assert 2.0 * SAMPLE_RATE <= a.size <= 3.5 * SAMPLE_RATE  # 2 s excerpt + release tail
    assert jobs[0].key() != jobs[1].key() and not np.allclose(a[: b.size], b[: a.size])  # timbres differ
    again, report = render_many(jobs, workers=1, progress=False)
    assert report.cached == 2 and report.rendered == 0 and again == done


def test_render_key_changes_with_excerpt_and_midi_content(percepiano, tmp_path):
    midi = _midi(percepiano)
    base = RenderJob(midi, "timgm6mb", 0.0, 2.0)
    assert base.key() == RenderJob(midi, "timgm6mb", 0.0, 2.0).key()
    assert base.key() != RenderJob(midi, "timgm6mb", 1.0, 2.0).key()
    copy = tmp_path / "copy.mid"
    copy.write_bytes(midi.read_bytes())
    assert RenderJob(copy, "timgm6mb", 0.0, 2.0).key() == base.key()  # content, not path
    data = pretty_midi.PrettyMIDI(str(midi))
    data.instruments[0].notes[0].velocity = max(1, data.instruments[0].notes[0].velocity - 10)
    data.write(str(copy))
    assert RenderJob(copy, "timgm6mb", 0.0, 2.0).key() != base.key()  # stale render detected


def test_corrupt_and_silent_midi_are_skipped_with_one_warning_each(percepiano, cache, tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"this is not a MIDI file")
    quiet = tmp_path / "quiet.mid"
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(velocity=1, pitch=21, start=0.0, end=0.3))
    pm.instruments.append(inst)
    pm.write(str(quiet))
    good = RenderJob(_midi(percepiano), "timgm6mb", 0.0, 2.0)  # its first note is at 1.0 s
    warnings = []
    done, report = render_many([RenderJob(bad, "timgm6mb"), RenderJob(quiet, "timgm6mb"), good], workers=1,
                               progress=False, warn=warnings.append)
    assert list(done) == [good] and len(report.skipped) == 2
    assert len(warnings) == 2
    assert "cannot parse MIDI" in warnings[0] + warnings[1] and "silent" in warnings[0] + warnings[1]
