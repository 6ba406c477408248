"""The trainer: every loss term in compute_loss, the link a plain model; fast distillation
from the shipped cache (the teacher is never loaded)."""

import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from backend import BACKEND, numpy

import tosc_sionna as ts
from tosc_sionna import losses
from tosc_sionna.data import TeacherCacheDataset, default_teacher_cache

DATA = Path(__file__).parent / "data"


def batch(n=32, classes=10, seed=0, labelled=None):
    """Images and dict targets (a negative label is unlabelled)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    if labelled is not None:
        labels[~labelled] = -1
    y = {"label": labels.astype(np.int32), "labelled": (labels >= 0).astype(np.float32),
         "teacher": rng.dirichlet(np.ones(classes), n).astype(np.float32)}
    return rng.uniform(size=(n, 28, 28, 1)).astype(np.float32), y


def small_link(seed=0, **kwargs):
    return ts.make_link(ts.AWGNChannel(), num_symbols=4, width=4, hidden_units=(16,), seed=seed,
                        **kwargs)


def test_one_step_registers_nothing_on_the_link_and_the_trainer_holds_the_terms():
    ts.set_seed(0)
    link = small_link()
    trainer = ts.make_trainer(link, steps_per_epoch=1, epochs=1, beta=0.5)
    x, y = batch()
    history = trainer.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert set(history) == {"loss", "ce", "kd", "accuracy", "rate"}
    # the link: no loss, no metric, no training-only layer
    assert link.losses == [] and link.metrics == []
    assert all(not isinstance(v, keras.metrics.Metric) for v in vars(link).values())
    # compute_loss, in training: alpha CE + (1 - alpha) KD + beta rate, by hand
    ts.set_seed(3)
    out = trainer(x, training=True)
    ts.set_seed(3)
    total = float(numpy(trainer.compute_loss(x, y, out, training=True)))
    logits = out["logits"]
    ce = numpy(losses.label_cross_entropy(y["label"], logits))
    kd = numpy(losses.distillation_kl(y["teacher"], logits, 4.0))
    rate = float(numpy(losses.gaussian_rate(out["mu"], out["log_var"])))
    assert total == pytest.approx(np.mean(0.5 * ce + 0.5 * kd) + 0.5 * rate, rel=1e-5)
    # out of training the rate is measured, not added
    assert float(numpy(trainer.compute_loss(x, y, out, training=False))) == pytest.approx(
        np.mean(0.5 * ce + 0.5 * kd), rel=1e-5)


def test_evaluate_reports_each_term_over_the_right_rows():
    ts.set_seed(0)
    link = small_link()
    trainer = ts.make_trainer(link, steps_per_epoch=1, epochs=1)
    labelled = np.zeros(16, bool)
    labelled[[2, 9]] = True
    x, y = batch(16, labelled=labelled)
    link.set_eval_snr(60.0)  # the channel's noise is negligible: outputs repeat
    result = trainer.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    out = trainer(x, training=False)
    logits = numpy(out["logits"])
    assert result["kd"] == pytest.approx(float(np.mean(numpy(losses.distillation_kl(
        y["teacher"], logits, 4.0)))), rel=1e-3)
    # ce and accuracy over the 2 labelled rows only
    ce = numpy(losses.label_cross_entropy(y["label"], logits))
    assert result["ce"] == pytest.approx(ce[[2, 9]].mean(), rel=1e-3)
    right = np.argmax(logits, -1) == y["label"]
    assert result["accuracy"] == pytest.approx(right[[2, 9]].mean())
    rate = float(numpy(losses.gaussian_rate(out["mu"], out["log_var"])))
    assert result["rate"] == pytest.approx(rate, rel=1e-4)


def test_labels_only_targets_and_bad_targets_say_what_is_wrong():
    link = small_link()
    trainer = ts.make_trainer(link, steps_per_epoch=1, epochs=1)
    x, y = batch(8)
    packed = np.concatenate([y["label"][:, None].astype(np.float32), y["teacher"]], 1)
    with pytest.raises(ValueError, match="must be a dict with keys"):
        trainer.fit(x, packed, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="trains a TaskOrientedLink"):
        ts.DistillationTrainer(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="deterministic"):
        ts.DistillationTrainer(small_link(stochastic=False), beta=1e-4)
    assert ts.DistillationTrainer(small_link(stochastic=False)).beta == 0.0
    assert ts.DistillationTrainer(small_link()).beta == 1e-4
    for bad in ({"beta": -1.0}, {"feature_dim": -2}, {"alpha": 2.0}, {"temperature": 0}):
        with pytest.raises(ValueError):
            ts.DistillationTrainer(small_link(), **bad)
    with pytest.raises(ValueError, match="learning_rate"):
        ts.make_trainer(small_link(), 1, 1, learning_rate=0.0)
    # 0.4's training arguments on the link say where they went
    with pytest.raises(TypeError, match="DistillationTrainer"):
        ts.make_link(ts.AWGNChannel(), rate_weight=1e-4)


def test_recipe_is_adam_with_cosine_decay_over_the_run():
    trainer = ts.make_trainer(small_link(), steps_per_epoch=10, epochs=3, learning_rate=1e-3)
    schedule = trainer.optimizer.learning_rate if callable(
        trainer.optimizer.learning_rate) else trainer.optimizer._learning_rate
    assert isinstance(trainer.optimizer, ts.training.Adam)
    assert isinstance(trainer.optimizer, keras.optimizers.Adam)
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(15)) == pytest.approx(0.5e-3, rel=1e-5)  # half way: cos(pi/2)
    assert float(schedule(30)) == pytest.approx(0.0, abs=1e-9)


def _adam_case(rng, mixed):
    shapes = [(3, 5), (5,), (2, 2, 4), ()]
    dtypes = ["float32", "float64", "float32", "float32"] if mixed else ["float32"] * 4
    start = [rng.normal(size=s).astype(d) for s, d in zip(shapes, dtypes, strict=True)]
    grads = [[rng.normal(scale=10.0 ** rng.integers(-4, 1), size=s).astype(d)
              for s, d in zip(shapes, dtypes, strict=True)] for _ in range(6)]
    return start, grads


def _count_fused_calls(monkeypatch):
    """Calls of torch's fused Adam kernel (torch line; always 0 on TensorFlow)."""
    calls = []
    if BACKEND == "torch":
        import torch

        kernel = torch._fused_adam_

        def spy(*args, **kwargs):
            calls.append(1)
            return kernel(*args, **kwargs)

        monkeypatch.setattr(torch, "_fused_adam_", spy)
    return calls


@pytest.mark.parametrize("amsgrad, mixed, accumulate",
                         [(False, False, None), (True, False, None), (False, True, None),
                          (False, False, 3)])
def test_our_adam_takes_keras_adams_steps(monkeypatch, amsgrad, mixed, accumulate):
    # the recipe's Adam (torch's fused kernel on the torch line's CPU; Keras' own update
    # for variables of mixed dtypes) moves the variables as Keras' Adam does, step for
    # step, with a decaying learning rate, Keras' epsilon and gradient accumulation
    start, grads = _adam_case(np.random.default_rng(0), mixed)
    calls = _count_fused_calls(monkeypatch)
    moved = []
    for make in (ts.training.Adam, keras.optimizers.Adam):
        schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=8)
        optimizer = make(schedule, epsilon=1e-3, amsgrad=amsgrad,
                         gradient_accumulation_steps=accumulate)
        variables = [keras.Variable(v, dtype=v.dtype) for v in start]
        for step in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in step], variables)
        moved.append([numpy(v) for v in variables])
        # its state is Keras': the iterations and two (amsgrad: three) moments per variable
        per_variable = (3 if amsgrad else 2) + (1 if accumulate else 0)
        assert len(optimizer.variables) == 1 + per_variable * len(start)
        assert int(numpy(optimizer._iterations)) == len(grads)
    for ours, theirs, first in zip(*moved, start, strict=True):
        assert np.max(np.abs(ours - first)) > 1e-3  # they moved
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    # the speed-up is there: one kernel call per applied step, none for mixed dtypes
    applied = len(grads) // (accumulate or 1)
    assert len(calls) == (0 if BACKEND != "torch" or mixed else applied)
    # saved and restored by name on either line
    config = keras.saving.serialize_keras_object(ts.training.Adam(1e-3))
    assert isinstance(keras.saving.deserialize_keras_object(config), ts.training.Adam)


@pytest.mark.torch  # TensorFlow has no stateless_apply
def test_our_adam_stateless_apply_is_keras():
    # stateless_apply (Keras' functional form, given copies of the state) returns moved
    # values and leaves the variables alone, before and after ordinary steps; the
    # ordinary steps then still move the variables (a scope's stand-in tensors must not
    # be kept for them)
    start, grads = _adam_case(np.random.default_rng(1), mixed=False)
    results = []
    for make in (ts.training.Adam, keras.optimizers.Adam):
        optimizer = make(1e-2)
        variables = [keras.Variable(v) for v in start]
        optimizer.build(variables)
        seen = []
        for i, step in enumerate(grads):
            g = [keras.ops.convert_to_tensor(x) for x in step]
            if i in (0, 3):
                before = [numpy(v) for v in variables]
                new, _ = optimizer.stateless_apply(
                    [keras.ops.copy(v.value) for v in optimizer.variables], g,
                    [keras.ops.copy(v.value) for v in variables])
                for b, v in zip(before, variables, strict=True):
                    np.testing.assert_array_equal(numpy(v), b)  # untouched
                seen.append([numpy(v) for v in new])
            else:
                optimizer.apply(g, variables)
        seen.append([numpy(v) for v in variables])
        results.append(seen)
    for ours, theirs in zip(*results, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert np.max(np.abs(results[0][-1][0] - start[0])) > 1e-3  # the ordinary steps moved them


def test_keras_distiller_with_an_online_keras_teacher_uses_our_loss():
    """A user of Keras' own Distiller (teacher in the loop) can use our distillation term."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + 2 * (x[:, 1] > 0)
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    student = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    kd = ts.SoftLabelDistillation(temperature=4.0)
    distiller = keras.distillation.Distiller(teacher=teacher, student=student,
                                             distillation_losses=kd, student_loss_weight=0.0)
    distiller.compile(optimizer=keras.optimizers.Adam(5e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # our term on the teacher's logits, by hand
    t_logits, s_logits = teacher(x), student(x)
    before = float(np.mean(numpy(
        losses.distillation_kl(keras.ops.softmax(t_logits), s_logits, 4.0))))
    assert float(numpy(kd.compute_loss(t_logits, s_logits))) == pytest.approx(before, rel=1e-5)
    # the distiller reports it for its first step (one batch: before the update), then
    # trains the student towards the teacher
    history = distiller.fit(x, y, epochs=30, batch_size=64, verbose=0).history
    assert history["distillation_loss"][0] == pytest.approx(before, rel=1e-5)
    after = float(np.mean(numpy(
        losses.distillation_kl(keras.ops.softmax(teacher(x)), student(x), 4.0))))
    assert after < 0.2 * before


def test_default_student_of_make_link_is_the_main_jobs(tmp_path):
    from script_modules import KD_JOB, load_script

    job = load_script(KD_JOB)
    args = job.parse([])
    assert job.check_args(args) is None
    assert args.student == ts.DEFAULT_STUDENT
    preset = ts.student_preset(ts.DEFAULT_STUDENT)
    assert (args.width, args.separable, tuple(args.hidden_units)) == (
        preset.width, preset.separable, preset.hidden_units)
    x = np.zeros((1, 28, 28, 1), np.float32)
    default = ts.make_link(ts.AWGNChannel())
    default(x, snr_db=10.0)
    main_job = job.build_link(args, num_classes=10)  # what the job trains
    main_job(x, snr_db=10.0)
    assert default.count_params() == main_job.count_params()

    def unnamed(config):  # layer names are numbered per process: compare the rest
        if isinstance(config, dict):
            return {k: unnamed(v) for k, v in config.items() if k not in ("name", "seed")}
        return [unnamed(v) for v in config] if isinstance(config, list) else config

    assert unnamed(default.get_config()) == unnamed(main_job.get_config())


def test_a_0_4_link_file_loads_with_its_outputs_or_fails_naming_the_version():
    expected = np.load(DATA / "link-0.4-expected.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = keras.saving.load_model(DATA / "link-0.4.keras")
    assert any("0.4" in str(w.message) and "rate_weight" in str(w.message) for w in caught)
    symbols = old.transmit(expected["inputs"], 10.0)
    np.testing.assert_allclose(numpy(symbols), expected["link_04_symbols"], rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(numpy(old.receive(symbols, 10.0)),
                               expected["link_04_logits"], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"tosc-sionna 0\.4 with a training-only feature head"):
        keras.saving.load_model(DATA / "link-0.4-features.keras")


def test_training_steps_reduce_the_ib_loss_on_real_data(tmp_path):
    ts.set_seed(0)
    data = TeacherCacheDataset(default_teacher_cache(), batch_size=128, seed=0)
    link = ts.make_link(ts.AWGNChannel(), num_symbols=8, width=8, hidden_units=(64,), seed=0,
                        separable=False, snr_train_db=(-5.0, 20.0))
    # the cosine decay spans 10 epochs: these 2 train at nearly the full learning rate
    trainer = ts.make_trainer(link, steps_per_epoch=40, epochs=10, beta=1e-3)
    loss = trainer.distillation_loss
    x, y = data[0]
    # training mode: batch statistics; 80 steps are too few for batch norm's moving averages
    before = float(loss(y, link(x, snr_db=10.0, training=True)))
    history = trainer.fit(data, steps_per_epoch=40, epochs=2, verbose=0).history
    for key in ("loss", "ce", "kd", "accuracy", "rate"):
        assert key in history and np.all(np.isfinite(history[key])), key
    assert history["loss"][-1] < history["loss"][0]
    after = float(loss(y, link(x, snr_db=10.0, training=True)))
    assert after < 0.8 * before
    # chance is 0.1; after 80 steps seed 0 gives 0.399 on the torch line (CI, 2 cores)
    assert history["accuracy"][-1] > 0.3
    assert history["rate"][-1] > 0
    # the trained link alone saves and reloads, with identical outputs
    path = tmp_path / "student.keras"
    link.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ts.TaskOrientedLink) and loaded.losses == []
    ts.set_seed(5)
    a = link(x, snr_db=5.0)
    ts.set_seed(5)
    np.testing.assert_array_equal(numpy(a), numpy(loaded(x, snr_db=5.0)))
    # and so does the trainer (its config holds the link and the loss weights)
    trainer.save(tmp_path / "trainer.keras")
    back = keras.models.load_model(tmp_path / "trainer.keras")
    assert json.dumps(back.get_config()["link"]["config"]["encoder"]) == json.dumps(
        trainer.get_config()["link"]["config"]["encoder"])
    assert back.beta == 1e-3


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
    np.testing.assert_allclose(y["teacher"], clean.cache.teacher_probs(rows, np.zeros(256, int)))
    two = TeacherCacheDataset(cache, batch_size=256, seed=3, num_views=2)
    assert set(np.unique(two.views)) == {0, 1}
    for bad in (0, full.cache.num_views + 1, True):
        with pytest.raises(ValueError, match="num_views must be in"):
            TeacherCacheDataset(cache, num_views=bad)
    with pytest.raises(ValueError, match="goes with view='random'"):
        TeacherCacheDataset(cache, view=0, num_views=1)
