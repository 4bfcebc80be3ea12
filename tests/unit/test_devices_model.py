"""Device windows: identity masking, the per-device track, the --by device build and split."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.build_devices import build_from_devices, capture_windows
from classifier.dataset import load_dataset
from classifier.devices import (DeviceTrack, device_preprocess, identity_tokens, mask_identity,
                                parse_mac, read_mac_file)
from classifier.evaluate_devices import confusable_pairs, merged_accuracy
from classifier.metrics import report
from classifier.packets import ip_from_frame, parse
from topologies.builtin_devices import device_frames, write_device_folder

MAC = "02:ab:cd:12:34:56"


def _ip(f):
    return ip_from_frame(bytes(f), 1)


def test_identity_masking_removes_mac_hostname_and_dhcp_addresses():
    frames = device_frames(MAC, "camera", ip="192.168.1.77")
    macb = parse_mac(MAC)
    toks = identity_tokens(macb, bytes([192, 168, 1, 77]))
    for _ts, f in frames:
        ip = _ip(f)
        m = mask_identity(ip, toks)
        assert len(m) == len(ip)
        body = m[parse(m).ip_header_len:]
        for t in (macb, b"02abcd123456", b"123456", b"192.168.1.77", bytes([192, 168, 1, 77])):
            assert t not in body, (t, f.summary())
    # the discover had the MAC in chaddr, client id and hostname: the hostname option's
    # whole value goes (a name is identity), its kind and length stay
    raw = _ip(frames[0][1])
    disc = mask_identity(raw, toks)
    assert b"camera-" in raw and b"camera-" not in disc and macb not in disc
    assert b"\x0c\x0d" + bytes(13) in disc
    # a packet without identity is unchanged
    tcp = _ip(frames[-2][1])
    assert mask_identity(tcp, toks) == tcp


def test_track_keeps_only_the_device_and_counts_directions():
    pre = device_preprocess(k=4)
    tr = DeviceTrack(parse_mac(MAC), pre, windows=2)
    frames = device_frames(MAC, "plug")
    other = device_frames("02:00:00:00:00:99", "camera")
    for (t1, f1), (t2, f2) in zip(frames, other):
        tr.add(t1, bytes(f1))
        tr.add(t2, bytes(f2))
    assert tr.full and len(tr.views) == 8                 # budget: windows * k
    assert {d for _t, _pv, d in tr.views} == {0, 1}       # sent and received
    X = tr.vectors()
    assert X.shape == (2, 4, pre.n_bytes + 3)
    assert X[:, :, pre.n_bytes + 1].tolist() == [[0, 1, 0, 1], [0, 0, 0, 1]]   # DHCP x2, DNS, SSDP, SYN, SYN-ACK
    # the same frames offline (a capture) give the same windows
    assert tr.ipv4 == bytes([192, 168, 1, 50])


def test_capture_windows_equal_track_fed_live(tmp_path):
    pre = device_preprocess(k=4)
    folder = write_device_folder(tmp_path / "Cam", MAC, "camera", captures=1)
    X, _ = capture_windows(next(folder.glob("*.pcap")), read_mac_file(folder), pre, 3)
    tr = DeviceTrack(parse_mac(MAC), pre, 3)
    for ts, f in device_frames(MAC, "camera", ip="192.168.1.50", seed=0):
        tr.add(ts, bytes(f))
    np.testing.assert_allclose(X, tr.vectors(), atol=1e-4)   # pcap timestamps: microseconds


def test_build_by_device_splits_by_capture_and_merges_types(tmp_path):
    root = tmp_path / "devs"
    write_device_folder(root / "CamA1", "02:aa:00:00:00:01", "camera", captures=6, seed=1)
    write_device_folder(root / "CamA2", "02:aa:00:00:00:02", "camera", captures=6, seed=2)
    write_device_folder(root / "PlugB", "02:bb:00:00:00:01", "plug", captures=10, seed=3)
    tax = tmp_path / "types.yaml"
    tax.write_text("CamA: [CamA1, CamA2]\nPlugB: [PlugB]\n")
    kinds = tmp_path / "kinds.yaml"
    kinds.write_text("camera: [CamA]\nplug: [PlugB]\n")
    res = build_from_devices(root, tmp_path / "d.npz", device_preprocess(k=4), windows=3,
                             taxonomy=tax, kinds=kinds, seed=0, fractions=(0.6, 0.2, 0.2),
                             progress=False)
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.labels == ["CamA", "PlugB"]
    # 11 usable packets per capture -> windows of 4, 4, 3
    assert len(ds.y) == 22 * 3
    for c in np.unique(ds.session):                       # session = capture: one side each
        assert len(np.unique(ds.split[ds.session == c])) == 1
    for lab in range(2):                                  # stratified: every type in every split
        assert set(np.unique(ds.split[ds.y == lab])) == {0, 1, 2}
    dev = ds.manifest["options"]["device"]
    assert dev["windows"] == 3 and dev["types"]["CamA2"] == "CamA"
    assert dev["kinds"] == {"CamA": "camera", "PlugB": "plug"}
    assert all(f["identity_masked_packets"] > 0 for f in res.manifest["files"])


def test_bad_mac_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "_iotdevice-mac.txt").write_text("not a mac")
    with pytest.raises(Exception) as e:
        read_mac_file(tmp_path)
    assert "_iotdevice-mac.txt" in str(e.value) and "\n" not in str(e.value)


def test_confusable_pairs_are_reported_and_merged():
    labels = ["A", "B", "C"]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 1, 1, 1, 0, 1, 2, 2])   # A and B swap, C is clean
    rep = report(y, p, labels)
    pairs = confusable_pairs(rep, labels, 0.2)
    assert [q["types"] for q in pairs] == [["A", "B"]]
    assert pairs[0]["captures_a_as_b"] == 2 and pairs[0]["captures_b_as_a"] == 1
    assert merged_accuracy(y, p, labels, pairs) == 1.0
    assert rep["accuracy"] == 0.7


def test_split_is_the_same_for_every_window_setting(tmp_path):
    """The split's unit is the capture: k and windows do not move captures between sides."""
    root = tmp_path / "devs"
    write_device_folder(root / "CamA", "02:aa:00:00:00:01", "camera", captures=8, seed=1)
    write_device_folder(root / "PlugB", "02:bb:00:00:00:01", "plug", captures=8, seed=3)
    sides = []
    for k, w in ((4, 1), (3, 3), (2, 5)):
        build_from_devices(root, tmp_path / f"d{k}{w}.npz", device_preprocess(k=k), windows=w,
                           seed=7, fractions=(0.6, 0.2, 0.2), progress=False)
        ds = load_dataset(tmp_path / f"d{k}{w}.npz")
        sides.append({int(c): int(ds.split[ds.session == c][0]) for c in np.unique(ds.session)})
    assert sides[0] == sides[1] == sides[2]
