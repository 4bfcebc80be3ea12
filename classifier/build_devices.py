"""``egw dataset build --by device``: device setup captures → dataset ``.npz`` of device windows.

Input: one folder per device holding its captures and ``_iotdevice-mac.txt`` (the
iot-sentinel layout). Each capture is one setup run of one device: its frames to or
from that MAC go through :class:`classifier.devices.DeviceTrack`, which yields up to
``windows`` samples (windows of ``pre.k`` usable packets). Labels are device types:
a taxonomy YAML (``type: [folder, ...]``) merges folders, else each folder is a type.

Split by capture: every window of a capture is on one side (the split's unit is the
capture; ``classifier.splits`` stratifies by type, seeded). Windows that are
byte-identical across captures are *not* merged (a device that does the same thing in
every setup run is the real case, and the held-out captures have it too); the audit
reports how many there are.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import time
from pathlib import Path

import numpy as np

from classifier.build import BuildResult, _counts, _progress, find_captures, load_taxonomy, package_version
from classifier.dataerrors import DataError, DatasetError
from classifier.dataset import save_dataset
from classifier.devices import DeviceTrack, format_mac, read_mac_file
from classifier.pcapio import read_frames
from classifier.preprocess import Preprocess


def capture_windows(path, mac: bytes, pre: Preprocess, windows: int, strict: bool = False,
                    warnings: list[str] | None = None) -> tuple[np.ndarray, DeviceTrack]:
    """The windows of one capture (``(n, *sample_shape)``) and the track that made them."""
    track = DeviceTrack(mac, pre, windows)
    for ts, lt, frame in read_frames(path, strict, warnings):
        track.add(ts, frame, lt)
        if track.full:
            break
    return track.vectors(), track


def device_folders(root: Path, taxonomy=None) -> tuple[dict[str, list[Path]], dict[str, str], list[str]]:
    """``({folder: captures}, {folder: type}, notes)``."""
    dirs = find_captures(root)
    notes = []
    if taxonomy:
        tax = load_taxonomy(taxonomy)
        unknown = sorted(set(dirs) - set(tax))
        if unknown:
            notes.append(f"folders not in the taxonomy, each its own type: {', '.join(unknown)}")
        return dirs, {d: tax.get(d, d) for d in dirs}, notes
    return dirs, {d: d for d in dirs}, notes


def build_from_devices(input_dir, out, pre: Preprocess, windows: int = 1, taxonomy=None,
                       kinds=None, seed: int = 0, fractions=(0.8, 0.1, 0.1), progress=True,
                       argv=None, strict=False) -> BuildResult:
    if pre.repr != "kpackets":
        raise DatasetError("--by device needs --repr kpackets (a window is k packets)")
    if windows < 1:
        raise DatasetError("--windows must be at least 1")
    root = Path(input_dir)
    dirs, folder_type, notes = device_folders(root, taxonomy)
    macs = {d: read_mac_file(root / d) for d in dirs}
    labels = sorted(set(folder_type.values()))
    index = {c: i for i, c in enumerate(labels)}
    kind_of = {t: k for t, k in load_taxonomy(kinds).items()} if kinds else {}
    files = [(f, d) for d in sorted(dirs) for f in dirs[d]]
    Xs, ys, file_of = [], [], []
    entries, warnings = [], []
    bar = _progress(len(files), "device windows", progress)
    t0 = time.perf_counter()
    frames = 0
    try:
        for fi, (f, d) in enumerate(files):
            try:
                X, track = capture_windows(f, macs[d], pre, windows, strict, warnings)
            except DataError as exc:
                raise DatasetError(str(exc)) from None
            frames += track.frames
            if len(X):
                Xs.append(X)
                ys.append(np.full(len(X), index[folder_type[d]], np.int64))
                file_of.append(np.full(len(X), fi, np.int64))
            entries.append({"path": str(f.relative_to(root)), "directory": d,
                            "class": folder_type[d], "mac": format_mac(macs[d]),
                            "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                            "device_frames": track.frames, "usable_packets": len(track.views),
                            "identity_masked_packets": track.masked,
                            "samples": int(len(X))})
            bar.update(1)
    finally:
        bar.close()
    if not Xs:
        raise DatasetError(f"{input_dir}: no capture gave a device window")
    X, y, cap = np.concatenate(Xs), np.concatenate(ys), np.concatenate(file_of)
    # the split's unit is the capture: one row each (its first window), so the split does
    # not depend on k or windows (same seed, same captures: same split)
    caps, first = np.unique(cap, return_index=True)
    from classifier.splits import assign_splits
    cap_split, info = assign_splits(X[first], y[first], caps, fractions, seed,
                                    {int(c): int(c) for c in caps}, min_files=1,
                                    hashes=[int(c).to_bytes(8, "little") for c in caps])
    split = cap_split[np.searchsorted(caps, cap)]
    info["unit"] = "capture (all windows of a capture on one side; identical windows of " \
                   "different captures not merged)"
    counts = _counts(labels, y, cap, split)   # "sessions" counts captures here
    manifest = {
        "format": "egw-dataset/1", "version": package_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "input": str(root), "input_kind": "devices", "taxonomy": str(taxonomy) if taxonomy else None,
        "classes": {lab: sorted(d for d, c in folder_type.items() if c == lab) for lab in labels},
        "options": {"seed": seed, "fractions": list(fractions), "strict": strict,
                    "device": {"windows": windows, "types": folder_type,
                               "kinds": {t: kind_of.get(t) for t in labels}}},
        "argv": argv, "files": entries, "skipped": [], "notes": notes, "warnings": warnings,
        "capture_of_sample": cap.tolist(), "split": info, "counts": counts,
        "packets_read": int(frames), "seconds": round(time.perf_counter() - t0, 2),
    }
    save_dataset(out, X, y, cap, split, labels, pre, manifest)
    return BuildResult(str(out), labels, counts, [], manifest, warnings)
