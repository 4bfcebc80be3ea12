"""Every model family: a step or two of training on tiny synthetic data, shapes, losses,
save/load round trips, LiteRT export and Keras/LiteRT agreement."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from classifier.bundle import load_bundle  # noqa: E402
from classifier.export import bundle_from_keras, load_keras  # noqa: E402
from classifier.nn.common import hardware_report, keras, set_seed  # noqa: E402
from classifier.preprocess import Preprocess  # noqa: E402

K = 3


def _data(shape, n=32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, *shape), dtype=np.float32)
    y = np.arange(n) % K
    return X, y


def _roundtrip_and_export(model, X, tmp_path, pre, int8_atol=0.08, fallback=False):
    ref = model.predict(X, verbose=0)
    assert ref.shape == (len(X), K)
    np.testing.assert_allclose(ref.sum(1), 1.0, atol=1e-4)
    bundle_from_keras(model, tmp_path, ["a", "b", "c"], pre, X, allow_float_fallback=fallback)
    again = load_keras(tmp_path / "model.keras")
    np.testing.assert_allclose(again.predict(X, verbose=0), ref, atol=1e-5)
    pf = load_bundle(tmp_path, prefer_int8=False).predict(X)
    np.testing.assert_allclose(pf, ref, atol=1e-4)
    pq = load_bundle(tmp_path).predict(X)
    assert np.abs(pq - ref).max() < int8_atol
    rep = hardware_report(model)
    assert rep["params"] == model.count_params() > 0
    assert rep["flops"] > 0 and rep["max_tensor"] > 0 and rep["ram_bytes_int8"] > 0
    return ref


def test_cnn(tmp_path):
    from classifier.nn import cnn

    set_seed(0)
    X, y = _data((1480,), 16)
    m = cnn.build((1480,), K, filters=16, hidden=8)
    assert isinstance(m.optimizer, keras.optimizers.RMSprop)
    assert [l.pool_size[0] for l in m.layers if "pool" in l.name] == [5, 5, 35]
    h = m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    _roundtrip_and_export(m, X, tmp_path, Preprocess(repr="packet1480"))


def test_deepnfv(tmp_path):
    from classifier.nn import deepnfv

    set_seed(0)
    X, y = _data((30, 30))
    m = deepnfv.build((30, 30), K, hidden=16)
    assert isinstance(m.optimizer, keras.optimizers.SGD)
    assert sum(type(l).__name__ == "Conv2D" for l in m.layers) == 4
    assert sum(type(l).__name__ == "Dense" for l in m.layers) == 2
    m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    _roundtrip_and_export(m, X, tmp_path, Preprocess(repr="image900"))


def test_kpnet_drops_iat_column(tmp_path):
    from classifier.nn import kpnet

    set_seed(0)
    X, y = _data((4, 11))
    m = kpnet.build((4, 11), K, width=8, hidden=8)
    m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    X2 = X.copy()
    X2[:, :, -1] = 0.123  # the inter-arrival column carries nothing
    np.testing.assert_allclose(m.predict(X2, verbose=0), m.predict(X, verbose=0), atol=1e-6)
    _roundtrip_and_export(m, X, tmp_path, Preprocess(repr="kpackets", k=4, n_bytes=8))


def test_tiny_and_limits(tmp_path):
    from classifier.nn import tiny_nas

    set_seed(0)
    X, y = _data((784,))
    m = tiny_nas.build((784,), K)
    m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    rep = hardware_report(m)
    assert rep["params"] <= 50_000 and rep["flops"] <= 5_000_000
    ok, rep2, _ = tiny_nas.check_limits(tiny_nas.TINY_DEFAULT, (784,), K)
    assert ok and rep2["params"] == rep["params"]
    big = {"blocks": [dict(tiny_nas.TINY_DEFAULT["blocks"][0], filters=64, stride=1, pool=None)] * 3,
           "head": "flatten"}
    ok, _, why = tiny_nas.check_limits(big, (784,), K)
    assert not ok and ("params" in why or "FLOPs" in why or "tensor" in why)
    _roundtrip_and_export(m, X, tmp_path, Preprocess(repr="session784"))


def test_nas_mutations_and_search():
    from classifier.nn import tiny_nas

    rng = np.random.default_rng(0)
    g = tiny_nas.TINY_DEFAULT
    kinds = set()
    for _ in range(40):
        child, what = tiny_nas.mutate(g, rng)
        kinds.add(what.split()[0])
        assert child is not g and g == tiny_nas.TINY_DEFAULT  # parent untouched
    assert {"insert", "delete", "block"} <= kinds
    set_seed(0)
    X, y = _data((64,), 40)
    res = tiny_nas.search(X, y, (64,), K, generations=1, population=1, epochs=1, batch_size=16,
                          limits={"max_params": 20_000}, groups=np.arange(40), log=lambda *_: None)
    assert len(res.history) == 2
    for r in res.history:
        assert r["params"] <= 20_000 and r["flops"] <= 5_000_000
    assert res.model.output_shape == (None, K)


def test_nas_fitness_is_pure_and_children_train_in_worker_processes():
    """genome -> fitness is a function of its inputs (same inputs, same answer), and a
    generation's children train in spawned worker processes with the same result shape."""
    from classifier.nn import tiny_nas

    X, y = _data((64,), 48)
    data = {"Xtr": X[:36], "ytr": y[:36], "Xva": X[36:], "yva": y[36:]}
    settings = {"input_shape": [64], "n_classes": K, "epochs": 2, "batch_size": 16,
                "learning_rate": 1e-3, "patience": 2, "seed": 0, "class_weight": {}}
    g = tiny_nas.TINY_DEFAULT
    a = tiny_nas.fitness(g, settings, data)
    b = tiny_nas.fitness(g, settings, data)
    assert a["val_macro_f1"] == b["val_macro_f1"] and a["epochs"] == 2
    assert all(np.array_equal(u, v) for u, v in zip(a["weights"], b["weights"]))
    child, _ = tiny_nas.mutate(g, np.random.default_rng(1))
    ev = tiny_nas.Evaluator(data, workers=2)
    try:
        assert ev.pool is not None
        res = ev.map([g, child], settings)
    finally:
        ev.close()
    assert len(res) == 2 and all(0 <= r["val_macro_f1"] <= 1 and r["weights"] for r in res)
    m = tiny_nas.build((64,), K, g)
    m.set_weights(res[0]["weights"])   # the driver rebuilds a worker's network


def test_cart_matches_sklearn(tmp_path):
    from classifier.nn import cart

    rng = np.random.default_rng(0)
    X = (rng.integers(0, 256, (60, 30, 30)) / 255).astype(np.float32)
    y = np.arange(60) % K
    clf = cart.fit_tree(X, y, K)
    m = cart.tree_to_keras(clf, (30, 30), K)
    ref = clf.predict_proba(X.reshape(60, -1))
    got = _roundtrip_and_export(m, X, tmp_path, Preprocess(repr="image900"), int8_atol=1.01,
                                fallback=True)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    pq = load_bundle(tmp_path).predict(X)
    assert (pq.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_bytesgan_heads_losses_and_steps(tmp_path):
    from classifier.nn import bytesgan

    set_seed(0)
    logits = tf.constant([[0.5, -1.0, 2.0], [-3.0, -2.0, -4.0]])
    z = np.exp(logits.numpy()).sum(1)
    np.testing.assert_allclose(bytesgan.RealProbability()(logits).numpy()[:, 0], z / (z + 1), rtol=1e-5)
    ce, real, fake = bytesgan.ByteSGAN.losses(logits, tf.constant([2, 1]), logits, logits)
    np.testing.assert_allclose(float(real), np.mean(-np.log(z / (z + 1))), rtol=1e-5)
    np.testing.assert_allclose(float(fake), np.mean(-np.log(1 / (z + 1))), rtol=1e-5)

    X, y = _data((1480,), 16)
    gan = bytesgan.ByteSGAN((1480,), K, seed=0)
    assert gan.gen.output_shape == (None, 1480)
    g_img = gan.gen.get_layer("g_conv").output.shape
    assert tuple(g_img[1:]) == (20, 74, 1)
    assert gan.disc.get_layer("d_conv1").strides == (2, 2)
    fake_x = gan.gen(gan.noise(4)).numpy()
    assert fake_x.min() >= 0 and fake_x.max() <= 1
    hist = gan.fit(X[:8], y[:8], X[8:], epochs=2, batch_size=8, steps_per_epoch=1, X_val=X, y_val=y,
                   progress=False, log=lambda *_: None)
    for k in ("d_adv_loss", "g_adv_loss", "g_fm_loss", "d_sup_loss", "val_accuracy"):
        assert len(hist[k]) == 2 and all(np.isfinite(hist[k]))
    # the two-headed discriminator (custom layer) saves and loads
    gan.discriminator.save(tmp_path / "disc.keras")
    again = load_keras(tmp_path / "disc.keras")
    for a, b in zip(again.predict(X, verbose=0), gan.discriminator.predict(X, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    _roundtrip_and_export(gan.classifier, X, tmp_path / "b", Preprocess(repr="packet1480"))
