"""fastgnn.optim.lr: closed forms, stepping, optimizer coupling, torch.optim.lr_scheduler parity, bad input."""
import math
import warnings

import numpy as np
import pytest

from fastgnn.optim import SGD, Adam
from fastgnn.optim.lr import (
    Chain,
    ClosedFormSchedule,
    Constant,
    Cosine,
    Exponential,
    LinearWarmup,
    ReduceOnPlateau,
    Sequential,
    Step,
)

STEPS = 40


def _opt(lr=0.1):
    return SGD([np.zeros(3, np.float32)], lr=lr)


# (ours, torch factory, kwargs for ours, kwargs for torch)
PAIRS = [
    (Constant, "ConstantLR", dict(factor=0.25, total_iters=7), dict(factor=0.25, total_iters=7)),
    (Constant, "ConstantLR", dict(), dict(factor=1.0, total_iters=0)),
    (Exponential, "ExponentialLR", dict(gamma=0.93), dict(gamma=0.93)),
    (Step, "StepLR", dict(step_size=6, gamma=0.5), dict(step_size=6, gamma=0.5)),
    (Cosine, "CosineAnnealingLR", dict(t_max=15, eta_min=0.001), dict(T_max=15, eta_min=0.001)),
    (Cosine, "CosineAnnealingLR", dict(t_max=1), dict(T_max=1)),
    (LinearWarmup, "LinearLR", dict(start_factor=0.1, warmup_steps=8), dict(start_factor=0.1, total_iters=8)),
    (LinearWarmup, "LinearLR", dict(start_factor=1.0, warmup_steps=5, end_factor=0.2),
     dict(start_factor=1.0, end_factor=0.2, total_iters=5)),
]


def _torch_values(torch, make, steps=STEPS, base=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    out = [opt.param_groups[0]["lr"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("ours, theirs, kw, tkw", PAIRS)
def test_closed_forms_match_torch(ours, theirs, kw, tkw):
    torch = pytest.importorskip("torch")
    want = _torch_values(torch, lambda o: getattr(torch.optim.lr_scheduler, theirs)(o, **tkw))
    opt = _opt()
    sched = ours(opt, **kw)
    got = [opt.lr]
    for _ in range(STEPS):
        sched.step()
        got.append(opt.lr)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # lr_at is the same curve and is pure
    pure = ours(0.1, **kw)
    np.testing.assert_allclose([pure.lr_at(t) for t in range(STEPS + 1)], want, rtol=1e-12, atol=1e-15)
    assert pure.last_step == 0 and pure.get_last_lr() == pure.lr_at(0)


def test_closed_forms_by_hand():
    assert Exponential(2.0, gamma=0.5).lr_at(3) == 0.25
    assert [Step(1.0, step_size=3, gamma=0.1).lr_at(t) for t in (0, 2, 3, 6)] == [1.0, 1.0, 0.1, 1.0 * 0.1 ** 2]
    c = Cosine(1.0, t_max=4, eta_min=0.2)
    assert c.lr_at(0) == 1.0 and c.lr_at(4) == pytest.approx(0.2) and c.lr_at(2) == pytest.approx(0.6)
    assert c.lr_at(8) == pytest.approx(1.0)  # periodic past t_max, like torch
    w = LinearWarmup(0.5, start_factor=0.2, warmup_steps=4)
    assert [w.lr_at(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.5])
    assert w.lr_at(0) > 0  # the first warm-up step trains
    assert Constant(0.3).lr_at(10 ** 9) == 0.3
    assert Constant(0.3, factor=0.5, total_iters=2).lr_at(1) == 0.15


def test_chain_matches_torch():
    torch = pytest.importorskip("torch")
    L = torch.optim.lr_scheduler

    def make(o):
        return L.ChainedScheduler([L.ExponentialLR(o, gamma=0.9), L.LinearLR(o, start_factor=0.2, total_iters=5),
                                   L.StepLR(o, step_size=7, gamma=0.5)])

    want = _torch_values(torch, make)
    opt = _opt()
    sched = Chain(opt, [Exponential(opt, gamma=0.9), LinearWarmup(opt, start_factor=0.2, warmup_steps=5),
                        Step(opt, step_size=7, gamma=0.5)])
    got = [opt.lr]
    for _ in range(STEPS):
        sched.step()
        got.append(opt.lr)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_sequential_matches_torch():
    torch = pytest.importorskip("torch")
    L = torch.optim.lr_scheduler

    def make(o):
        return L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.CosineAnnealingLR(o, T_max=20),
                                  L.ExponentialLR(o, gamma=0.9)], milestones=[5, 25])

    want = _torch_values(torch, make)
    opt = _opt()
    sched = Sequential(opt, [LinearWarmup(opt, start_factor=0.1, warmup_steps=5), Cosine(opt, t_max=20),
                             Exponential(opt, gamma=0.9)], milestones=[5, 25])
    got = [opt.lr]
    for _ in range(STEPS):
        sched.step()
        got.append(opt.lr)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert sched.lr_at(25) == pytest.approx(0.1)


@pytest.mark.parametrize("kw", [
    dict(patience=2),
    dict(mode="max", factor=0.5, patience=1, cooldown=2),
    dict(threshold_mode="abs", threshold=0.05, patience=0, min_lr=0.002),
    dict(mode="max", threshold_mode="abs", threshold=0.1, factor=0.3, patience=1, eps=1e-3),
])
def test_reduce_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    metrics = [5, 4, 4.1, 4.2, 4.0, 3.99, 3.98, 4.5, 3.0, 3.0, 3.0, 2.9, 2.95, 3.1, 1.0, 1.0, 1.0, 1.0, 1.0, 0.99,
               0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    p = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([p], lr=0.1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    opt = _opt()
    sched = ReduceOnPlateau(opt, **kw)
    for m in metrics:
        topt.step()
        tsched.step(m)
        sched.step(m)
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert sched.get_last_lr() == opt.lr
    assert not isinstance(sched, ClosedFormSchedule) and not hasattr(sched, "lr_at")


def test_reduce_on_plateau_float_base_and_state():
    s = ReduceOnPlateau(1.0, patience=0, factor=0.5)
    s.step(np.float64(3.0))
    s.step(3.0)
    assert s.get_last_lr() == 0.5
    sd = s.state_dict()
    t = ReduceOnPlateau(1.0, patience=0, factor=0.5)
    t.load_state_dict(sd)
    for x in (2.0, 2.0, 2.0):
        s.step(x)
        t.step(x)
    assert s.get_last_lr() == t.get_last_lr() == 0.125 and t.best == 2.0
    with pytest.raises(ValueError, match="metric: is NaN"):
        s.step(float("nan"))
    with pytest.raises(TypeError, match="metric"):
        s.step("low")


def test_schedule_drives_optimizer_and_reads_initial_lr():
    opt = Adam([np.zeros(2, np.float32)], lr=0.2)
    warm = LinearWarmup(opt, start_factor=0.5, warmup_steps=2)
    assert opt.lr == 0.1 and opt.initial_lr == 0.2
    cos = Cosine(opt, t_max=10)  # a second schedule on the same optimizer sees the initial lr, like torch
    assert cos.base_lr == 0.2
    warm.step()
    assert opt.lr == pytest.approx(0.15) and warm.get_last_lr() == opt.lr
    assert warm.lr_at(0) == 0.1 and opt.lr == pytest.approx(0.15)  # lr_at does not touch the optimizer


@pytest.mark.parametrize("make", [
    lambda o: Exponential(o, gamma=0.9),
    lambda o: Step(o, step_size=3),
    lambda o: Cosine(o, t_max=7, eta_min=0.01),
    lambda o: LinearWarmup(o, start_factor=0.3, warmup_steps=4),
    lambda o: Constant(o, factor=0.5, total_iters=3),
    lambda o: Sequential(o, [Constant(o, factor=0.5, total_iters=3), Cosine(o, t_max=5)], [3]),
    lambda o: Chain(o, [Exponential(o, gamma=0.9), LinearWarmup(o, warmup_steps=3)]),
])
def test_state_dict_round_trip(make):
    a_opt, b_opt = _opt(), _opt()
    a, b = make(a_opt), make(b_opt)
    for _ in range(5):
        a.step()
    b.load_state_dict(a.state_dict())
    assert b_opt.lr == a_opt.lr and b.last_step == 5
    for _ in range(4):
        a.step()
        b.step()
        assert a.get_last_lr() == b.get_last_lr() == b_opt.lr


def test_load_state_dict_rejects_other_schedules():
    sd = Exponential(0.1, gamma=0.9).state_dict()
    with pytest.raises(ValueError, match="state_dict: saved by schedule 'Exponential', cannot load into Step"):
        Step(0.1, step_size=2).load_state_dict(sd)
    with pytest.raises(ValueError, match="gamma"):
        Exponential(0.1, gamma=0.9).load_state_dict(dict(sd, config={"gamma": -1.0}))
    with pytest.raises(TypeError, match="state_dict"):
        Exponential(0.1, gamma=0.9).load_state_dict(None)


@pytest.mark.parametrize("build, err, match", [
    (lambda: LinearWarmup(0.1, start_factor=0.0), ValueError, "start_factor: must be > 0"),
    (lambda: LinearWarmup(0.1, start_factor=1.5), ValueError, "start_factor: must be <= 1"),
    (lambda: LinearWarmup(0.1, warmup_steps=0), ValueError, "warmup_steps: must be >= 1"),
    (lambda: LinearWarmup(0.1, end_factor=-0.1), ValueError, "end_factor"),
    (lambda: Exponential(0.1, gamma=0.0), ValueError, "gamma: must be > 0"),
    (lambda: Step(0.1, step_size=0), ValueError, "step_size: must be >= 1"),
    (lambda: Step(0.1, step_size=2.5), TypeError, "step_size: expected an integer"),
    (lambda: Cosine(0.1, t_max=0), ValueError, "t_max: must be >= 1"),
    (lambda: Cosine(0.1, t_max=5, eta_min=-1.0), ValueError, "eta_min: must be >= 0"),
    (lambda: Constant(0.1, factor=2.0), ValueError, "factor: must be <= 1"),
    (lambda: Constant(-0.1), ValueError, "optimizer_or_base_lr: must be >= 0"),
    (lambda: Constant("0.1"), TypeError, "optimizer_or_base_lr: expected an optimizer"),
    (lambda: ReduceOnPlateau(0.1, factor=1.0), ValueError, "factor: must be < 1"),
    (lambda: ReduceOnPlateau(0.1, mode="median"), ValueError, "mode"),
    (lambda: ReduceOnPlateau(0.1, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda: ReduceOnPlateau(0.1, patience=-1), ValueError, "patience: must be >= 0"),
    (lambda: Sequential(0.1, [Constant(0.1), Constant(0.1)], [0]), ValueError, r"milestones\[0\]: must be >= 1"),
    (lambda: Sequential(0.1, [Constant(0.1), Constant(0.1)], [3, 4]), ValueError, "milestones: expected 1 values"),
    (lambda: Sequential(0.1, [Constant(0.1)] * 3, [4, 4]), ValueError, "milestones: must be strictly increasing"),
    (lambda: Sequential(0.1, [Constant(0.1), Constant(0.2)], [3]), ValueError, r"schedules\[1\]: its base lr 0.2"),
    (lambda: Chain(0.1, []), TypeError, "schedules: expected a non-empty list"),
    (lambda: Chain(0.1, [ReduceOnPlateau(0.1)]), TypeError, r"schedules\[0\]: expected a closed-form schedule"),
])
def test_bad_settings(build, err, match):
    with pytest.raises(err, match=match):
        build()


@pytest.mark.parametrize("step, err, match", [(-1, ValueError, "step: must be >= 0"),
                                              (1.5, TypeError, "step: expected an integer")])
def test_lr_at_bad_step(step, err, match):
    with pytest.raises(err, match=match):
        Cosine(0.1, t_max=3).lr_at(step)


def test_lr_at_is_usable_with_a_float_base_for_epochs():
    sched = LinearWarmup(0.025, start_factor=0.1, warmup_steps=3)
    lrs = [sched.lr_at(epoch) for epoch in range(5)]
    assert lrs[0] == pytest.approx(0.0025) and lrs[3:] == [0.025, 0.025]
    assert all(b >= a for a, b in zip(lrs, lrs[1:])) and sched.optimizer is None
    assert math.isclose(Chain(0.0, [Exponential(0.0, gamma=0.5)]).lr_at(3), 0.0)
