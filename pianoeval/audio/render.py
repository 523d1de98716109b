"""MIDI -> audio with FluidSynth, cached on disk, in parallel.

PercePiano's audio was rendered from its MIDI with FluidSynth; we render the same
way, through pyfluidsynth (libfluidsynth), with two local General MIDI soundfonts so
that cross-soundfont robustness can be measured:

* ``musescore``: Debian's ``MuseScore_General.sf3`` (``musescore-general-soundfont``),
* ``timgm6mb``: ``TimGM6mb.sf2``, bundled with pretty_midi.

Every note and the pedal controllers (64 sustain, 66 sostenuto, 67 soft) are played
on one acoustic-piano channel (GM program 0), whatever program the file names: the
performances are piano. Reverb and chorus are off (rooms are an augmentation, see
``augment``). The synth gain is fixed and nothing is normalised, so loudness keeps
the dynamics the raters heard. Output: mono float32 at ``SAMPLE_RATE``.

A render is cached as int16 ``.npy`` under ``cache_root()/audio/renders/`` with a key
made of the MIDI file's content, the soundfont file's content hash, the sample rate,
the excerpt (start, duration), the synth settings and ``RENDER_VERSION``: any change
gives a new key, so a stale render is never used. ``render_many`` renders what is missing in a
process pool with a progress bar; a MIDI file that cannot be parsed, or a render that
is silent, is skipped with one warning line and counted, never a crash.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from pianoeval.errors import ConfigError, DataError
from pianoeval.io import atomic_write
from pianoeval.paths import cache_root

SAMPLE_RATE = 24_000  # MuQ's rate; high enough that an 8 kHz phone low-pass is meaningful
SYNTH_GAIN = 0.4
TAIL_SECONDS = 1.0  # let the last notes and the pedal release ring out
SILENCE_RMS = 1e-4  # a render quieter than this (about -80 dBFS) is treated as broken
PEDAL_CONTROLLERS = (64, 66, 67)


def _debian_soundfont() -> Path:
    return Path("/usr/share/sounds/sf3/MuseScore_General.sf3")


def _pretty_midi_soundfont() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    return Path(list(spec.submodule_search_locations)[0]) / "TimGM6mb.sf2"


#: soundfont name -> function giving its local path (no download, ever)
SOUNDFONTS = {"musescore": _debian_soundfont, "timgm6mb": _pretty_midi_soundfont}


def soundfont_path(name: str) -> Path:
    """The local file of a named soundfont; ConfigError / DataError with the fix."""
    if name not in SOUNDFONTS:
        raise ConfigError(f"soundfont {name!r} is unknown (available: {', '.join(SOUNDFONTS)})")
    path = SOUNDFONTS[name]()
    if not path.is_file():
        fix = ("install Debian's musescore-general-soundfont (`make setup` does)" if name == "musescore"
               else "reinstall pretty_midi, which ships it")
        raise DataError(f"soundfont {name!r}: {path} not found; {fix}")
    return path


@lru_cache(maxsize=None)
def _file_hash(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_hash(path: Path) -> str:
    """Content hash of a file (memoised per size, mtime and inode: an atomic rewrite is a new inode)."""
    stat = Path(path).stat()
    return _file_hash(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


#: Bump when the rendering code changes what it produces (part of every render key,
#: with the synth settings; hashing this file's source would re-render everything on
#: every comment edit). Version 1 renders were first made with pretty_midi parsing;
#: symusic gives the same events to within 3 microseconds (below one sample at 24 kHz).
RENDER_VERSION = "1"


def render_settings() -> str:
    return f"v{RENDER_VERSION}|sr{SAMPLE_RATE}|gain{SYNTH_GAIN}|tail{TAIL_SECONDS}|pedals{PEDAL_CONTROLLERS}"


@dataclass(frozen=True)
class RenderJob:
    """One render: a MIDI file (or an excerpt of it) with one soundfont."""

    midi: Path
    soundfont: str
    start: float = 0.0  # excerpt start in seconds (notes starting before it are left out)
    duration: float | None = None  # excerpt length in seconds; None = to the end

    def key(self) -> str:
        parts = [file_hash(self.midi), file_hash(soundfont_path(self.soundfont)), render_settings(),
                 f"{self.start:.3f}", "end" if self.duration is None else f"{self.duration:.3f}"]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    def path(self) -> Path:
        return cache_root() / "audio" / "renders" / self.soundfont / f"{self.key()}.npy"


class RenderError(Exception):
    """A MIDI file that cannot be rendered (unreadable, no notes, silent output)."""


@lru_cache(maxsize=4)
def _score(midi: Path):
    """The parsed MIDI file, times in seconds (symusic; windows of one file share it)."""
    import symusic

    try:
        return symusic.Score(str(midi), ttype="second")
    except Exception as err:  # symusic raises RuntimeError / ValueError on broken files
        raise RenderError(f"cannot parse MIDI ({type(err).__name__}: {err})") from None


def _events(midi: Path, start: float, duration: float | None) -> tuple[list[tuple[float, int, int, int]], float]:
    """(time, order, a, b) events relative to ``start`` and the excerpt's end time.

    order 0 = controller (a=number, b=value), 1 = note off (a=pitch), 2 = note on
    (a=pitch, b=velocity): at equal times pedal changes come first, then releases."""
    stop = None if duration is None else start + duration
    events: list[tuple[float, int, int, int]] = []
    last_end = 0.0
    for track in _score(Path(midi)).tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            onset = float(note.time)
            if onset < start or (stop is not None and onset >= stop):
                continue
            end = onset + float(note.duration)
            end = end if stop is None else min(end, stop)
            events.append((onset - start, 2, int(note.pitch), int(note.velocity)))
            events.append((end - start, 1, int(note.pitch), 0))
            last_end = max(last_end, end - start)
        pedal_at_start: dict[int, int] = {}
        for cc in sorted(track.controls, key=lambda c: c.time):
            if cc.number not in PEDAL_CONTROLLERS:
                continue
            if cc.time < start:
                pedal_at_start[int(cc.number)] = int(cc.value)  # the pedal state when the excerpt begins
            elif stop is None or cc.time < stop:
                events.append((float(cc.time) - start, 0, int(cc.number), int(cc.value)))
        events += [(0.0, 0, number, value) for number, value in pedal_at_start.items()]
    if not any(kind == 2 for _, kind, _, _ in events):
        raise RenderError("no notes to render" + ("" if duration is None else f" in [{start:.1f}, {stop:.1f}) s"))
    end = last_end if stop is None else min(max(last_end, 0.0), duration)
    return sorted(events), end


class Renderer:
    """A FluidSynth synth with one soundfont loaded (load once, render many)."""

    def __init__(self, soundfont: str):
        import fluidsynth

        self.soundfont = soundfont
        self.synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(SAMPLE_RATE))
        self.synth.setting("synth.reverb.active", 0)
        self.synth.setting("synth.chorus.active", 0)
        self.sfid = self.synth.sfload(str(soundfont_path(soundfont)))
        if self.sfid < 0:
            raise DataError(f"soundfont {soundfont!r}: FluidSynth could not load {soundfont_path(soundfont)}")

    def render(self, job: RenderJob) -> np.ndarray:
        """Mono float32 audio of ``job`` at SAMPLE_RATE; RenderError when unusable."""
        events, end = _events(job.midi, job.start, job.duration)
        synth = self.synth
        synth.system_reset()
        synth.program_select(0, self.sfid, 0, 0)
        total = int(round((end + TAIL_SECONDS) * SAMPLE_RATE))
        chunks, position = [], 0
        for time_s, kind, a, b in events:
            target = min(int(round(time_s * SAMPLE_RATE)), total)
            if target > position:
                chunks.append(synth.get_samples(target - position))
                position = target
            if kind == 0:
                synth.cc(0, a, b)
            elif kind == 1:
                synth.noteoff(0, a)
            else:
                synth.noteon(0, a, b)
        if total > position:
            chunks.append(synth.get_samples(total - position))
        synth.system_reset()
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2)
        audio = stereo.mean(axis=1) / 32768.0
        if not np.isfinite(audio).all() or float(np.sqrt(np.mean(audio ** 2))) < SILENCE_RMS:
            raise RenderError(f"render is silent (rms below {SILENCE_RMS:g}) with soundfont {job.soundfont!r}")
        return audio

    def close(self) -> None:
        self.synth.delete()


def load_render(path: Path) -> np.ndarray:
    """A cached render as float32; RenderError when the file is unreadable or silent."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise RenderError(f"cached render {path} is corrupt ({err}); delete it to re-render") from None
    audio = data.astype(np.float32) / 32767.0
    if audio.ndim != 1 or audio.size == 0 or float(np.sqrt(np.mean(audio ** 2))) < SILENCE_RMS:
        raise RenderError(f"cached render {path} is silent or malformed; delete it to re-render")
    return audio


def _save_render(path: Path, audio: np.ndarray) -> None:
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), pcm))


_WORKER: dict[str, Renderer] = {}


def _render_batch(jobs: list[RenderJob]) -> list[tuple[RenderJob, str | None]]:
    """Worker: render and store ``jobs`` (one soundfont); (job, error or None) each."""
    out = []
    for job in jobs:
        try:
            renderer = _WORKER.get(job.soundfont) or _WORKER.setdefault(job.soundfont, Renderer(job.soundfont))
            _save_render(job.path(), renderer.render(job))
            out.append((job, None))
        except RenderError as err:
            out.append((job, str(err)))
    return out


@dataclass
class RenderReport:
    rendered: int = 0
    cached: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)  # "<midi>@<soundfont>" -> reason

    def line(self) -> str:
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan")
        return (f"[audio] renders: {self.rendered} new ({self.audio_seconds:.0f} s of audio in "
                f"{self.wall_seconds:.1f} s, {speed:.0f}x real time), {self.cached} cached, "
                f"{len(self.skipped)} skipped")


def render_many(jobs: list[RenderJob], workers: int | None = None, progress: bool | None = None,
                warn=print) -> tuple[dict[RenderJob, Path], RenderReport]:
    """Render every job whose cached file is missing; returns (job -> cached path, report).

    Skipped jobs (unparsable MIDI, silent render) are absent from the mapping and listed
    in the report, each with one warning line."""
    from tqdm.auto import tqdm

    report = RenderReport()
    done: dict[RenderJob, Path] = {}
    todo = []
    for job in dict.fromkeys(jobs):
        if job.path().is_file():
            done[job] = job.path()
            report.cached += 1
        else:
            todo.append(job)
    if not todo:
        return done, report
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    todo.sort(key=lambda j: (str(j.midi), j.soundfont, j.start))  # windows of one file go to one worker
    size = math.ceil(len(todo) / (workers * 4))
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    started = time.time()
    bar = tqdm(total=len(todo), desc="rendering audio", unit="file", disable=None if progress is None else not progress, leave=False)
    results: list[tuple[RenderJob, str | None]] = []
    if workers == 1:
        for batch in batches:
            for item in _render_batch(batch):
                results.append(item)
                bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(_render_batch, b) for b in batches]):
                for item in future.result():
                    results.append(item)
                    bar.update(1)
    bar.close()
    report.wall_seconds = time.time() - started
    for job, error in results:
        if error is None:
            done[job] = job.path()
            report.rendered += 1
            report.audio_seconds += np.load(job.path(), mmap_mode="r").shape[0] / SAMPLE_RATE
        else:
            name = f"{job.midi.name}@{job.soundfont}"
            warn(f"[audio] skip {name}: {error}")
            report.skipped[name] = error
    return done, report
