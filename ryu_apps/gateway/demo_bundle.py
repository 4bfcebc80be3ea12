"""A tiny *real* model bundle for tests, benchmarks and demos (needs TensorFlow to build;
the gateway only runs it through LiteRT).

Four classes recognised from the first payload bytes of a session's first usable
packet (``packet1480`` representation, payload only, 64 bytes):

- ``voip``: payload starting with ``VOIP`` and 28 zero bytes;
- ``p2p``: the BitTorrent handshake (``\\x13BitTorrent protocol`` + 8 zero reserved bytes);
- ``streaming``: iperf3's 4-byte UDP connect message (``9876`` / ``6789``);
- ``web``: anything else (random bytes, text, iperf3's control cookie).

``python -m ryu_apps.gateway.demo_bundle OUT_DIR`` writes it (a few seconds).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

LABELS = ["voip", "p2p", "streaming", "web"]
PREFIX = {"voip": b"VOIP" + bytes(28), "p2p": b"\x13BitTorrent protocol" + bytes(8)}
N_BYTES = 64
ALNUM = b"abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ0189 /:.-_=&?\r\n"


def preprocess():
    from classifier.preprocess import Preprocess

    return Preprocess(repr="packet1480", layers="l7", n_bytes=N_BYTES, max_packets=4)


def sample_payload(label: str, rng: np.random.Generator) -> bytes:
    n = int(rng.integers(8, 200))
    if label in PREFIX:
        return PREFIX[label] + rng.bytes(n)
    if label == "streaming":
        return [b"9876", b"6789"][int(rng.integers(0, 2))]
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return rng.bytes(int(rng.integers(1, 200)))
    if kind == 1:
        return bytes(rng.choice(np.frombuffer(ALNUM, np.uint8), int(rng.integers(1, 200))))
    return rng.choice([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00",
                       b"hello", b"1234", b"ping"]) + rng.bytes(int(rng.integers(0, 50)))


def dataset(n_per_class: int = 600, seed: int = 0):
    from ryu_apps.gateway.rules import FiveTuple  # noqa: F401  (keeps imports light)

    rng = np.random.default_rng(seed)
    pp = preprocess()
    xs, ys = [], []
    for y, label in enumerate(LABELS):
        for _ in range(n_per_class * (2 if label == "web" else 1)):
            ip = _udp(sample_payload(label, rng))
            xs.append(pp.vectorize([(0.0, ip, 0)])[0])
            ys.append(y)
    return np.stack(xs).astype(np.float32), np.array(ys)


def _udp(payload: bytes) -> bytes:
    import struct

    l4 = struct.pack("!HHHH", 40000, 5201, 8 + len(payload), 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, 17, 0,
                       b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02") + l4


def build(out_dir, seed: int = 0, threshold: float = 0.5) -> Path:
    """Train the tiny model and write the bundle (float + int8) to ``out_dir``."""
    from classifier.export import bundle_from_keras
    from classifier.nn.common import keras

    keras.utils.set_random_seed(seed)
    x, y = dataset(seed=seed)
    model = keras.Sequential([keras.Input((N_BYTES,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(len(LABELS), activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=64, verbose=0, shuffle=True)
    acc = float(model.evaluate(x, y, verbose=0)[1])
    out = Path(out_dir)
    bundle_from_keras(model, out, LABELS, preprocess(), x, threshold=threshold,
                      card={"model": "gateway demo (payload prefix)", "train_accuracy": acc},
                      save_keras=False)
    return out


if __name__ == "__main__":  # pragma: no cover
    print(build(sys.argv[1] if len(sys.argv) > 1 else "demo-bundle"))


CACHE_DIR = Path("/tmp/egw-demo-bundle-v1")


def cached(path: str | Path = CACHE_DIR) -> Path:
    """The demo bundle in ``path``, built there first if missing (file-locked)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "card.json").is_file():
            build(path)
    return path
