"""fastgnn.schedules: temperature annealing, loss-weight warm-up and the curriculum."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgnn
from fastgnn.schedules import CurriculumScheduler, CurriculumStage, LossWeightScheduler, TemperatureScheduler


# ----------------------------------------------------------------------------------------- temperature
def test_linear_temperature_midpoint_and_hold():
    t = TemperatureScheduler(1.0, 0.1, steps=10)
    assert t.value(5) == pytest.approx(0.55, abs=1e-15)
    assert t.value(0) == 1.0 and t.value(10) == 0.1 and t.value(1000) == 0.1
    assert [t.step() for _ in range(3)] == pytest.approx([0.91, 0.82, 0.73])
    assert t.current == t.value(3) and t.last_step == 3


def test_exponential_and_step_temperatures():
    e = TemperatureScheduler(1.0, 0.01, steps=4, kind="exponential")
    assert [e.value(s) for s in range(5)] == pytest.approx([1.0, 10 ** -0.5, 0.1, 10 ** -1.5, 0.01])
    s = TemperatureScheduler(1.0, 0.2, steps=10, kind="step", step_size=2, gamma=0.5)
    assert [s.value(k) for k in range(8)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2])
    up = TemperatureScheduler(0.1, 0.5, steps=10, kind="step", step_size=1, gamma=2.0)
    assert [up.value(k) for k in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.5])


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.01, 10), b=st.floats(0.01, 10), steps=st.integers(1, 200),
       kind=st.sampled_from(["linear", "exponential", "cosine"]))
def test_temperature_is_monotone_between_its_ends(a, b, steps, kind):
    t = TemperatureScheduler(a, b, steps=steps, kind=kind)
    vals = np.array([t.value(s) for s in range(steps + 3)])
    d = np.diff(vals) * np.sign(b - a)
    assert (d >= -1e-12 * max(a, b)).all()
    assert vals[0] == pytest.approx(a) and vals[-1] == pytest.approx(b)
    assert vals.min() >= min(a, b) * (1 - 1e-12) and vals.max() <= max(a, b) * (1 + 1e-12)


def test_cosine_temperature_shape():
    t = TemperatureScheduler(1.0, 0.1, steps=10, kind="cosine")
    assert t.value(5) == pytest.approx(0.55)
    assert t.value(1) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 10)) / 2)
    assert 1.0 - t.value(1) < t.value(4) - t.value(5)  # slow start, fastest in the middle


def test_temperature_state_dict():
    a = TemperatureScheduler(1.0, 0.1, steps=10, kind="cosine")
    for _ in range(4):
        a.step()
    b = TemperatureScheduler(1.0, 0.1, steps=10, kind="cosine")
    b.load_state_dict(a.state_dict())
    assert b.step() == a.step()
    with pytest.raises(ValueError, match="state_dict: settings"):
        TemperatureScheduler(1.0, 0.2, steps=10, kind="cosine").load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="state_dict: saved by 'LossWeightScheduler'"):
        a.load_state_dict(LossWeightScheduler({"x": 1.0}, {"x": 0.0}, 2).state_dict())


@pytest.mark.parametrize("kw, err, match", [
    (dict(initial=0.0), ValueError, "initial: must be > 0"),
    (dict(final=-1.0), ValueError, "final: must be > 0"),
    (dict(steps=0), ValueError, "steps: must be >= 1"),
    (dict(kind="sigmoid"), ValueError, "kind"),
    (dict(kind="step"), ValueError, "step_size: required"),
    (dict(kind="step", step_size=0), ValueError, "step_size: must be >= 1"),
    (dict(kind="step", step_size=2, gamma=1.5), ValueError, "gamma: 1.5 moves away"),
    (dict(kind="linear", step_size=2), ValueError, "step_size: only used"),
    (dict(initial=float("inf")), ValueError, "initial: must be finite"),
])
def test_temperature_bad_settings(kw, err, match):
    with pytest.raises(err, match=match):
        TemperatureScheduler(**{"initial": 1.0, "final": 0.1, "steps": 10, **kw})


def test_temperature_bad_step():
    with pytest.raises(ValueError, match="step: must be >= 0"):
        TemperatureScheduler().value(-1)


# ---------------------------------------------------------------------------------------- loss weights
def test_loss_weight_warmup():
    s = LossWeightScheduler({"infonce": 1.0, "local": 0.0, "spectral": 0.5}, {"infonce": 1.0, "local": 0.4,
                                                                             "spectral": 0.1}, warmup_steps=4)
    assert s.weights(0) == {"infonce": 1.0, "local": 0.0, "spectral": 0.5}
    assert s.weights(2) == pytest.approx({"infonce": 1.0, "local": 0.2, "spectral": 0.3})
    assert s.weights(4) == {"infonce": 1.0, "local": 0.4, "spectral": 0.1} == s.weights(99)
    assert s.step() == pytest.approx({"infonce": 1.0, "local": 0.1, "spectral": 0.4})
    c = LossWeightScheduler({"a": 0.0}, {"a": 1.0}, warmup_steps=4, kind="cosine")
    assert [c.weights(k)["a"] for k in range(5)] == pytest.approx([0, (1 - math.cos(math.pi / 4)) / 2, 0.5,
                                                                   (1 - math.cos(3 * math.pi / 4)) / 2, 1])
    assert LossWeightScheduler({"a": 0.0}, {"a": 1.0}, warmup_steps=0).weights(0) == {"a": 1.0}


def test_loss_weight_state_dict():
    a = LossWeightScheduler({"a": 0.0}, {"a": 1.0}, 10)
    for _ in range(3):
        a.step()
    b = LossWeightScheduler({"a": 0.0}, {"a": 1.0}, 10)
    b.load_state_dict(a.state_dict())
    assert b.current == a.current and b.last_step == 3
    with pytest.raises(ValueError, match="state_dict: settings"):
        LossWeightScheduler({"a": 0.0}, {"a": 2.0}, 10).load_state_dict(a.state_dict())


@pytest.mark.parametrize("args, err, match", [
    (({"a": 1.0}, {"b": 1.0}, 3), ValueError, "target: keys"),
    (({"a": -1.0}, {"a": 1.0}, 3), ValueError, r"initial\['a'\]: must be >= 0"),
    (({"a": 1.0}, {"a": float("nan")}, 3), ValueError, r"target\['a'\]: must be finite"),
    (({}, {}, 3), TypeError, "initial: expected a non-empty dict"),
    (([1.0], {"a": 1.0}, 3), TypeError, "initial"),
    (({"a": 1.0}, {"a": 1.0}, -1), ValueError, "warmup_steps: must be >= 0"),
    (({1: 1.0}, {1: 1.0}, 1), TypeError, "initial: keys must be loss names"),
])
def test_loss_weight_bad_settings(args, err, match):
    with pytest.raises(err, match=match):
        LossWeightScheduler(*args)


# ------------------------------------------------------------------------------------------ curriculum
def test_default_curriculum_is_the_documented_one():
    cur = CurriculumScheduler.default()
    want = [
        ("easy", 10, 0.5, 5, (1, 0.5, 0.1, 0.5), 0.3),
        ("medium", 20, 0.3, 10, (1, 0.3, 0.05, 0.3), 0.5),
        ("hard", 30, 0.1, 20, (1, 0.1, 0.01, 0.1), 0.7),
    ]
    for stage, (name, epochs, tau, neg, w, thr) in zip(cur.stages, want):
        assert (stage.name, stage.epochs, stage.temperature, stage.num_negatives, stage.difficulty_threshold) == (
            name, epochs, tau, neg, thr)
        assert stage.loss_weights == dict(zip(("infonce", "local", "spectral", "reconstruction"), w))
    assert cur.total_epochs == 60 and len(cur.stages) == 3


def test_curriculum_steps_and_stage_changes():
    cur = CurriculumScheduler.default()
    changes = [e + 1 for e in range(70) if cur.step()]
    assert changes == [10, 30]  # epochs after which a new stage starts
    assert cur.stage.name == "hard" and cur.finished and cur.epoch == 70
    assert [cur.stage_at(e).name for e in (0, 9, 10, 29, 30, 59, 60, 500)] == [
        "easy", "easy", "medium", "medium", "hard", "hard", "hard", "hard"]


def test_should_include_follows_the_stage_threshold():
    cur = CurriculumScheduler.default()
    assert cur.should_include(0.3) and not cur.should_include(0.31)
    np.testing.assert_array_equal(cur.should_include(np.array([0.1, 0.4, 0.9])), [True, False, False])
    for _ in range(10):
        cur.step()
    assert cur.should_include(0.5) and not cur.should_include(0.6)
    assert cur.temperature == 0.3 and cur.num_negatives == 10 and cur.loss_weights["local"] == 0.3
    with pytest.raises(ValueError, match="difficulty: non-finite"):
        cur.should_include(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="difficulty: must be finite"):
        cur.should_include(float("inf"))


def test_curriculum_state_dict():
    a = CurriculumScheduler.default()
    for _ in range(12):
        a.step()
    b = CurriculumScheduler.default()
    b.load_state_dict(a.state_dict())
    assert b.epoch == 12 and b.stage.name == "medium"
    other = CurriculumScheduler([CurriculumStage("only", 3, 0.2, 4, {"infonce": 1.0}, 1.0)])
    with pytest.raises(ValueError, match="state_dict: saved for other curriculum stages"):
        other.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="state_dict: saved by 'TemperatureScheduler'"):
        other.load_state_dict(TemperatureScheduler().state_dict())


@pytest.mark.parametrize("kw, err, match", [
    (dict(name=""), TypeError, "name"),
    (dict(epochs=0), ValueError, "epochs: must be >= 1"),
    (dict(temperature=0.0), ValueError, "temperature: must be > 0"),
    (dict(num_negatives=0), ValueError, "num_negatives: must be >= 1"),
    (dict(num_negatives=2.5), TypeError, "num_negatives: expected an integer"),
    (dict(loss_weights={"infonce": -1.0}), ValueError, r"loss_weights\['infonce'\]"),
    (dict(difficulty_threshold=1.5), ValueError, "difficulty_threshold: must be <= 1"),
])
def test_stage_bad_fields(kw, err, match):
    base = dict(name="s", epochs=2, temperature=0.5, num_negatives=3, loss_weights={"infonce": 1.0},
                difficulty_threshold=0.5)
    with pytest.raises(err, match=match):
        CurriculumStage(**{**base, **kw})


def test_scheduler_bad_stages():
    s = CurriculumStage("s", 2, 0.5, 3, {"infonce": 1.0}, 0.5)
    with pytest.raises(TypeError, match="stages: expected a non-empty list"):
        CurriculumScheduler([])
    with pytest.raises(TypeError, match=r"stages\[1\]: expected a CurriculumStage"):
        CurriculumScheduler([s, "hard"])
    with pytest.raises(ValueError, match="stages: names must be distinct"):
        CurriculumScheduler([s, s])


def test_stage_is_frozen_and_exported():
    s = CurriculumStage("s", 2, 0.5, 3, {"infonce": 1.0}, 0.5)
    with pytest.raises(AttributeError):
        s.epochs = 3
    assert fastgnn.CurriculumScheduler is CurriculumScheduler and fastgnn.TemperatureScheduler is TemperatureScheduler
