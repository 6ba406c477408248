"""Fast distillation from the shipped cache: the teacher is never loaded."""


import keras
import numpy as np
import pytest

import tosc_sionna as ts
from tosc_sionna.data import TeacherCacheDataset, default_teacher_cache
from tosc_sionna.losses import ib_metrics


def test_training_steps_reduce_the_ib_loss_on_real_data(tmp_path):
    ts.set_seed(0)
    data = TeacherCacheDataset(default_teacher_cache(), batch_size=128, seed=0)
    loss = ts.IBDistillationLoss(alpha=0.5, temperature=4.0)
    link = ts.make_link(ts.AWGNChannel(), num_symbols=8, width=8, hidden_units=(64,),
                        stochastic=True, rate_weight=1e-3, seed=0)
    link.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss, metrics=ib_metrics(loss))
    x, y = data[0]
    # training mode: batch statistics; 80 steps are too few for batch norm's moving averages
    before = float(loss(y, link(x, snr_db=10.0, training=True)))
    history = link.fit(data, steps_per_epoch=40, epochs=2, verbose=0).history
    for key in ("loss", "ce", "kd", "accuracy", "rate"):
        assert key in history and np.all(np.isfinite(history[key])), key
    assert history["loss"][-1] < history["loss"][0]
    after = float(loss(y, link(x, snr_db=10.0, training=True)))
    assert after < 0.8 * before
    assert history["accuracy"][-1] > 0.4  # chance is 0.1
    assert history["rate"][-1] > 0
    # the compiled link (loss, term metrics, rate) saves and reloads
    path = tmp_path / "student.keras"
    link.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, ts.IBDistillationLoss)
    ts.set_seed(5)
    a = link(x, snr_db=5.0)
    ts.set_seed(5)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(loaded(x, snr_db=5.0)))


def test_rate_weight_serializes_and_validates():
    link = ts.make_link(ts.AWGNChannel(), num_symbols=4, stochastic=True, rate_weight=0.01)
    assert link.get_config()["rate_weight"] == 0.01
    import pytest

    with pytest.raises(ValueError, match="rate_weight"):
        ts.make_link(ts.AWGNChannel(), rate_weight=-1.0)


def test_num_views_restricts_the_views_drawn_and_keeps_the_default():
    cache = default_teacher_cache()
    full = TeacherCacheDataset(cache, batch_size=256, seed=3)
    same = TeacherCacheDataset(cache, batch_size=256, seed=3, num_views=full.cache.num_views)
    np.testing.assert_array_equal(full.views, same.views)  # the default draws unchanged
    x_full, y_full = full[0]
    np.testing.assert_array_equal(x_full, same[0][0])
    clean = TeacherCacheDataset(cache, batch_size=256, seed=3, num_views=1)
    assert set(np.unique(clean.views)) == {0}
    x, y = clean[0]
    rows = clean.order[:256]
    # view 0 is the unaugmented image, with the teacher's outputs of that view
    plain = np.asarray(clean.images[clean.index[rows]]).astype(np.float32)[..., None] / 255.0
    np.testing.assert_array_equal(x, plain)
    np.testing.assert_allclose(y[:, 1:], clean.cache.teacher_probs(rows, np.zeros(256, int)))
    two = TeacherCacheDataset(cache, batch_size=256, seed=3, num_views=2)
    assert set(np.unique(two.views)) == {0, 1}
    for bad in (0, full.cache.num_views + 1, True):
        with pytest.raises(ValueError, match="num_views must be in"):
            TeacherCacheDataset(cache, num_views=bad)
    with pytest.raises(ValueError, match="goes with view='random'"):
        TeacherCacheDataset(cache, view=0, num_views=1)
