"""Frames inputs (``pianoeval.data.frames``) on real exported frames: both layouts, the checks
(width, NaN / Inf, keys, folder contents) and the content-hash cache."""

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from pianoeval.data.frames import (FRAME_SUFFIXES, FrameTable, content_hash, file_identity, load_frames, match_keys,
                                   pad_frames, write_frames)
from pianoeval.errors import DataError

SPACED = "Schubert_D935_no.3_4bars_2_1"  # on disk as " Schubert_D935_no.3_4bars_2_1.mid"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("pianoeval.data.frames.cache_root", lambda: tmp_path / "cache")


@pytest.fixture(scope="module")
def real(exported_frames) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in torch.load(exported_frames, weights_only=True).items()}


def quiet(messages: list):
    return messages.append


def test_a_pt_dict_and_a_folder_of_pt_npy_safetensors_files_give_the_same_frames(real, tmp_path):
    keys = sorted(real)[:9]
    write_frames(tmp_path / "frames.pt", {k: real[k] for k in keys})
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, key in enumerate(keys):
        if i % 3 == 0:
            torch.save(torch.from_numpy(real[key]), folder / f"{key}.pt")
        elif i % 3 == 1:
            np.save(folder / f"{key}.npy", real[key])
        else:
            save_file({"frames": real[key]}, str(folder / f"{key}.safetensors"))
    from_file, from_folder = load_frames(tmp_path / "frames.pt", warn=quiet([])), load_frames(folder, warn=quiet([]))
    assert from_file.table.keys == from_folder.table.keys == keys
    for key in keys:
        np.testing.assert_array_equal(from_file.table.get(key), real[key])
        np.testing.assert_array_equal(from_folder.table.get(key), real[key])
    assert from_file.width == real[keys[0]].shape[1] and from_file.table.frames.dtype == np.float16


def test_a_file_stem_with_a_leading_space_matches_its_label_key(real, tmp_path, percepiano):
    folder = tmp_path / "folder"
    folder.mkdir()
    some = sorted(real)[0]
    np.save(folder / f" {SPACED}.npy", real[some])  # the on-disk name of PercePiano's one spaced file
    np.save(folder / f"{some}.npy", real[some])
    loaded = load_frames(folder, warn=quiet([]))
    assert SPACED in loaded.table.keys
    assert match_keys(loaded, percepiano.by_id, "labels.json", warn=quiet([])) == {SPACED, some}


def test_float32_frames_stay_float32_float16_stays_float16_and_batches_are_float32(real, tmp_path):
    keys = sorted(real)[:4]
    single = load_frames(_written(tmp_path / "f32.pt", {k: real[k].astype(np.float32) for k in keys}), warn=quiet([]))
    half = load_frames(_written(tmp_path / "f16.pt", {k: real[k] for k in keys}), warn=quiet([]))
    assert single.table.frames.dtype == np.float32 and half.table.frames.dtype == np.float16
    frames, lengths = pad_frames([half.table.get(k) for k in keys[:2]])
    assert frames.dtype == torch.float32 and lengths.tolist() == [real[k].shape[0] for k in keys[:2]]
    short = int(lengths.argmin())
    assert float(frames[short, int(lengths[short]):].abs().sum()) == 0.0  # zero padding


def _written(path, arrays):
    write_frames(path, arrays)
    return path


def test_wrong_width_nan_and_inf_keys_are_skipped_counted_and_named(real, tmp_path):
    keys = sorted(real)[:6]
    arrays = {k: real[k].copy() for k in keys}
    arrays[keys[0]] = np.concatenate([arrays[keys[0]], arrays[keys[0]]], axis=1)  # twice as wide
    arrays[keys[1]][3, 0] = np.nan
    arrays[keys[2]][0, 1] = np.inf
    arrays[keys[3]] = arrays[keys[3]][:, :, None]  # [T, D, 1]
    messages = []
    loaded = load_frames(_written(tmp_path / "bad.pt", arrays), warn=messages.append)
    assert loaded.table.keys == keys[4:]
    assert loaded.skipped == {"not_frames": [keys[3]], "wrong_width": [keys[0]], "not_finite": [keys[1], keys[2]]}
    text = "\n".join(messages)
    for key in keys[:4]:
        assert key in text
    assert "NaN or Inf" in text and f"width {2 * real[keys[0]].shape[1]}" in text
    again = []
    load_frames(tmp_path / "bad.pt", warn=again.append)  # a warm load still reports what was skipped
    assert any("wrong_width" in m for m in again) and not any("checked and cached" in m for m in again)


def test_many_skipped_keys_are_named_ten_per_reason_then_counted(real, tmp_path):
    keys = sorted(real)[:15]
    arrays = {k: real[k].copy() for k in keys}
    for key in keys[:12]:
        arrays[key][0, 0] = np.nan
    messages = []
    loaded = load_frames(_written(tmp_path / "many.pt", arrays), warn=messages.append)
    named = [m for m in messages if m.startswith("[frames] skip '")]
    assert len(named) == 10 and len(loaded.skipped["not_finite"]) == 12  # all counted, 10 named
    assert "[frames] skip: 2 more keys (not_finite) not listed" in messages


def test_every_key_unusable_is_an_error(real, tmp_path):
    bad = {k: np.full_like(real[k], np.nan) for k in sorted(real)[:3]}
    with pytest.raises(DataError, match="every key's frames are unusable"):
        load_frames(_written(tmp_path / "nan.pt", bad), warn=quiet([]))
    ints = {k: real[k].astype(np.int32) for k in sorted(real)[:2]}
    with pytest.raises(DataError, match="no key holds usable frames"):
        load_frames(_written(tmp_path / "int.pt", ints), warn=quiet([]))


def test_keys_that_match_no_label_are_an_error_naming_both_files(real, tmp_path, percepiano):
    other = {f"song_{i}": real[k] for i, k in enumerate(sorted(real)[:3])}
    loaded = load_frames(_written(tmp_path / "other.pt", other), warn=quiet([]))
    with pytest.raises(DataError, match=r"other\.pt: none of its 3 keys .*'song_0'.* is a segment key of labels\.json"):
        match_keys(loaded, percepiano.by_id, "labels.json", warn=quiet([]))
    some = sorted(real)[0]
    messages = []
    mixed = load_frames(_written(tmp_path / "mixed.pt", {**other, some: real[some]}), warn=quiet([]))
    assert match_keys(mixed, percepiano.by_id, "labels.json", warn=messages.append) == {some}
    assert "3 frame keys have no label" in messages[0]


def test_bad_files_and_folder_contents_are_one_line_errors_or_counted_skips(real, tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_frames(tmp_path / "missing.pt")
    (tmp_path / "frames.npz").write_bytes(b"x")
    with pytest.raises(DataError, match="must be a .pt dict"):
        load_frames(tmp_path / "frames.npz")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a readable .pt frames file"):
        load_frames(tmp_path / "garbage.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="holds a list, expected a dict"):
        load_frames(tmp_path / "list.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("frames go here")
    with pytest.raises(DataError, match="no .pt, .npy, .safetensors files"):
        load_frames(empty, warn=quiet([]))
    folder = tmp_path / "folder"
    folder.mkdir()
    a, b, c = sorted(real)[:3]
    np.save(folder / f"{a}.npy", real[a])
    torch.save({"nested": torch.from_numpy(real[b])}, folder / f"{b}.pt")  # a dict, not a tensor
    save_file({"x": real[c], "y": real[c]}, str(folder / f"{c}.safetensors"))  # two tensors
    (folder / "notes.txt").write_text("hello")
    messages = []
    loaded = load_frames(folder, warn=messages.append)
    assert loaded.table.keys == [a] and sorted(loaded.skipped["not_frames"]) == sorted([b, c])
    assert any("notes.txt" in m for m in messages) and any("holds a dict" in m for m in messages)
    np.save(folder / f"{b}.npy", real[b])  # now b has two files
    with pytest.raises(DataError, match=f"key '{b}' has 2 files"):
        load_frames(folder, warn=quiet([]))


def test_a_warm_load_reads_the_cache_and_a_changed_file_is_read_again(real, tmp_path):
    keys = sorted(real)[:5]
    path = _written(tmp_path / "frames.pt", {k: real[k] for k in keys})
    first, second = [], []
    load_frames(path, warn=first.append)
    warm = load_frames(path, warn=second.append)
    assert any("checked and cached" in m for m in first) and not second
    assert isinstance(warm.table.frames, np.memmap)
    sha = content_hash(path)
    assert file_identity(path) == {"path": str(path.resolve()), "sha256": sha}
    write_frames(path, {k: real[k] for k in keys[:3]})
    third = []
    changed = load_frames(path, warn=third.append)
    assert changed.sha256 != sha and len(changed.table) == 3 and any("checked and cached" in m for m in third)


def test_frame_table_round_trips_tuple_keys(tmp_path):
    table = FrameTable.from_arrays({("seg", "musescore", 0): np.ones((3, 2)), "plain": np.zeros((1, 2))})
    table.save(tmp_path / "t", {"note": 1})
    back = FrameTable.load(tmp_path / "t")
    assert back.keys == [("seg", "musescore", 0), "plain"] and back.meta == {"note": 1}
    np.testing.assert_array_equal(back.get(("seg", "musescore", 0)), np.ones((3, 2), np.float16))


def test_empty_files_are_one_line_errors_or_counted_skips(real, tmp_path):
    """An exception without a message (EOFError of a zero-byte file) is named by its type."""
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.pt: not a readable .pt frames file \(EOFError\)"):
        load_frames(tmp_path / "empty.pt")
    folder = tmp_path / "folder"
    folder.mkdir()
    a = sorted(real)[0]
    np.save(folder / f"{a}.npy", real[a])
    for suffix in FRAME_SUFFIXES:
        (folder / f"empty{suffix}").with_stem(f"empty_{suffix[1:]}").write_bytes(b"")
    messages = []
    loaded = load_frames(folder, warn=messages.append)
    assert loaded.table.keys == [a] and sorted(loaded.skipped["not_frames"]) == ["empty_npy", "empty_pt",
                                                                                   "empty_safetensors"]
    assert any("empty_pt.pt: unreadable (EOFError)" in m for m in messages)


@pytest.mark.parametrize("arrange, message", [
    (lambda a, i: a.T.copy(), r"every key has \d+ rows, so the frames look like \[D, T\]"),  # [D, T]
    (lambda a, i: a if i % 2 else np.concatenate([a, a], axis=1), "the keys' widths disagree"),  # a tie
])
def test_frames_with_no_width_most_keys_share_are_an_error(real, tmp_path, arrange, message):
    """Skipping every key but the largest minority as 'wrong width' would train on misread frames."""
    keys = sorted(real)[:8]
    with pytest.raises(DataError, match=message):
        load_frames(_written(tmp_path / "odd.pt", {k: arrange(real[k], i) for i, k in enumerate(keys)}),
                    warn=quiet([]))


def test_float64_frames_are_stored_as_float32_and_the_summary_says_so(real, tmp_path):
    """numpy's default dtype: a folder of np.save'd arrays or a .pt of float64 tensors just works."""
    keys = sorted(real)[:4]
    folder = tmp_path / "npy"
    folder.mkdir()
    for key in keys:
        np.save(folder / f"{key}.npy", real[key].astype(np.float64))
    for path in (_written(tmp_path / "f64.pt", {k: real[k].astype(np.float64) for k in keys}), folder):
        loaded = load_frames(path, warn=quiet([]))
        assert loaded.table.keys == keys and loaded.table.frames.dtype == np.float32
        np.testing.assert_array_equal(loaded.table.get(keys[0]), real[keys[0]].astype(np.float32))
        assert "(4 float64 keys stored as float32)" in loaded.summary()
        assert "(4 float64 keys stored as float32)" in load_frames(path, warn=quiet([])).summary()  # warm load
