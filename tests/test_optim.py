"""fastgnn.optim: SGD / Adam / AdamW against the NumPy transcription of torch.optim, row-sparse updates,
clipping, state dicts, thread-count independence and every bad input."""
import numba
import numpy as np
import pytest

from fastgnn.optim import SGD, Adam, AdamW, Optimizer, clip_grad_norm, clip_grad_value
from tests import reference_optim as ref

SHAPES = [[(1,)], [(7, 3), (1, 1), (0, 4), (5,)], [(20000,), (3, 5)]]  # 20000 spans two kernel chunks


def make(shapes, dtype, rng):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def grads_like(params, rng, scale=1.0):
    return [(scale * rng.standard_normal(p.shape)).astype(p.dtype) for p in params]


def copies(params):
    return [p.copy() for p in params]


SGD_CONFIGS = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    dict(lr=0.02, momentum=0.5, maximize=True),
]
ADAM_CONFIGS = [
    dict(lr=0.01),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True, weight_decay=0.05),
    dict(lr=0.003, betas=(0.3, 0.9), eps=1e-6),  # beta1 < 0.5: torch.lerp's other branch
    dict(lr=0.01, betas=(0.0, 0.0)),
]


def run_pair(opt, oracle, params, rng, steps):
    for _ in range(steps):
        g = grads_like(params, rng)
        assert opt.step(g) is True
        oracle.step(g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", range(len(SGD_CONFIGS)))
def test_sgd_matches_reference(k, dtype, rng):
    config, shapes = SGD_CONFIGS[k], SHAPES[k % len(SHAPES)]
    params = make(shapes, dtype, rng)
    mirror = copies(params)
    opt = SGD(params, **config)
    run_pair(opt, ref.SGDRef(mirror, **config), params, rng, 200)
    for p, q in zip(params, mirror):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", range(len(ADAM_CONFIGS)))
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_matches_reference(cls, k, dtype, rng):
    config, shapes = ADAM_CONFIGS[k], SHAPES[(k + (cls is AdamW)) % len(SHAPES)]
    params = make(shapes, dtype, rng)
    mirror = copies(params)
    opt = cls(params, **config)
    oracle = ref.AdamRef(mirror, decoupled=cls is AdamW, **{"weight_decay": 1e-2 if cls is AdamW else 0.0, **config})
    run_pair(opt, oracle, params, rng, 200)
    for i, (p, q) in enumerate(zip(params, mirror)):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)
        st = opt.state_of(i)
        np.testing.assert_allclose(st["exp_avg"], oracle.m[i], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(st["exp_avg_sq"], oracle.v[i], rtol=1e-6, atol=1e-9)
        assert st["step"] == 200


def test_float32_update_is_exact(rng):
    """Same operation order and no FMA contraction: the kernel reproduces the oracle bit for bit."""
    params = make([(257, 3)], np.float32, rng)
    mirror = copies(params)
    opt = AdamW(params, lr=0.01, amsgrad=True)
    run_pair(opt, ref.AdamRef(mirror, lr=0.01, weight_decay=1e-2, amsgrad=True, decoupled=True), params, rng, 50)
    np.testing.assert_array_equal(params[0], mirror[0])


def test_many_tensors_equal_one_flat_tensor(rng):
    sizes = rng.integers(1, 3000, size=60)
    params = [rng.standard_normal(int(s)).astype(np.float32) for s in sizes]
    flat = np.concatenate(params)
    opt_many, opt_one = Adam(params, lr=0.01), Adam([flat], lr=0.01)
    for _ in range(5):
        g = grads_like(params, rng)
        opt_many.step(g)
        opt_one.step([np.concatenate(g)])
    np.testing.assert_array_equal(np.concatenate(params), flat)


def test_params_stay_the_live_arrays(rng):
    params = make([(4, 2), (3,)], np.float32, rng)
    opt = SGD(params, lr=0.1)
    assert all(a is b for a, b in zip(opt.params, params))
    before = params[0].copy()
    opt.step(grads_like(params, rng))
    assert not np.array_equal(before, params[0])


@pytest.mark.parametrize("make_opt", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: Adam(p, lr=0.01, amsgrad=True),
    lambda p: AdamW(p, lr=0.01),
])
def test_one_and_two_threads_identical(make_opt, rng):
    base = make([(50001,), (7, 9)], np.float32, rng)
    grads = [grads_like(base, rng) for _ in range(3)]
    rows = rng.integers(0, 7, size=20)
    rgrads = rng.standard_normal((20, 9)).astype(np.float32)
    out = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            params = copies(base)
            opt = make_opt(params)
            for g in grads:
                opt.step(g)
            opt.step_rows(1, rows, rgrads)
            out.append(params)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    cases = [
        (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
        (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
        (Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True, betas=(0.8, 0.99))),
        (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ]
    for ours, theirs, cfg in cases:
        for dtype, rtol in ((np.float64, 1e-10), (np.float32, 2e-5)):
            params = make([(30, 4), (5,)], dtype, rng)
            tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
            opt, topt = ours(params, **cfg), theirs(tparams, **cfg)
            for _ in range(40):
                g = grads_like(params, rng)
                opt.step(g)
                for t, gi in zip(tparams, g):
                    t.grad = torch.tensor(gi)
                topt.step()
            for p, t in zip(params, tparams):
                np.testing.assert_allclose(p, t.detach().numpy(), rtol=rtol, atol=rtol, err_msg=f"{ours.__name__} {cfg}")


# --------------------------------------------------------------------------------------------- rows
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(40, 6), (1, 1), (25,)])
@pytest.mark.parametrize("kind", ["sgd", "sgd_nesterov", "adam", "adamw_ams"])
def test_step_rows_matches_reference(kind, shape, dtype, rng):
    table = rng.standard_normal(shape).astype(dtype)
    other = rng.standard_normal(3).astype(dtype)
    mirror = [table.copy(), other.copy()]
    if kind.startswith("sgd"):
        cfg = dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=kind == "sgd_nesterov")
        opt, oracle = SGD([table, other], **cfg), ref.SGDRef(mirror, **cfg)
    else:
        cfg = dict(lr=0.01, weight_decay=0.05, amsgrad=kind == "adamw_ams")
        cls = AdamW if kind == "adamw_ams" else Adam
        opt, oracle = cls([table, other], **cfg), ref.AdamRef(mirror, decoupled=cls is AdamW, **cfg)
    for step in range(30):
        m = int(rng.integers(0, 2 * shape[0] + 1))
        rows = rng.integers(0, max(1, shape[0] // 2 + 1), size=m)  # repeats, and rows never touched
        rg = rng.standard_normal((m, *shape[1:])).astype(dtype)
        assert opt.step_rows(0, rows, rg) is True
        oracle.step_rows(0, rows, rg)
    np.testing.assert_allclose(table, mirror[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(other, mirror[1])  # the other parameter never moves
    assert opt.state_of(0)["step"] == 30 and opt.state_of(1)["step"] == 0
    if kind.startswith("adam"):
        np.testing.assert_allclose(opt.state_of(0)["exp_avg"], oracle.m[0].reshape(shape), rtol=1e-6, atol=1e-7)


def test_step_rows_is_lazy(rng):
    table = rng.standard_normal((10, 4)).astype(np.float32)
    opt = Adam([table], lr=0.1, weight_decay=0.5)
    opt.step_rows(0, [1, 2], np.ones((2, 4), np.float32))
    before = table.copy()
    state_before = {k: v.copy() for k, v in opt.state_of(0).items() if k != "step"}
    opt.step_rows(0, [5, 5, 5], np.ones((3, 4), np.float32))
    keep = [r for r in range(10) if r != 5]
    np.testing.assert_array_equal(table[keep], before[keep])
    for k, v in opt.state_of(0).items():
        if k != "step":
            np.testing.assert_array_equal(v[keep], state_before[k][keep])
    assert not np.array_equal(table[5], before[5])
    # m was 0 for row 5: m = (1-β1)·(Σg + wd·p), the three repeats summed first
    want = np.float32(0.1) * (np.float32(3.0) + np.float32(0.5) * before[5, 0])
    assert opt.state_of(0)["exp_avg"][5, 0] == want


@pytest.mark.parametrize("make_opt", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda p: Adam(p, lr=0.01, amsgrad=True, weight_decay=0.1),
    lambda p: AdamW(p, lr=0.01),
])
def test_step_rows_with_every_row_equals_dense_step(make_opt, rng):
    a = rng.standard_normal((33, 5)).astype(np.float32)
    b = a.copy()
    oa, ob = make_opt([a]), make_opt([b])
    for _ in range(4):
        g = rng.standard_normal(a.shape).astype(np.float32)
        perm = rng.permutation(33)
        oa.step([g])
        ob.step_rows(0, perm, g[perm])
    np.testing.assert_array_equal(a, b)


def test_step_rows_matches_torch_sparse_adam(rng):
    torch = pytest.importorskip("torch")
    table = rng.standard_normal((50, 8))
    t = torch.tensor(table.copy(), requires_grad=True)
    opt = Adam([table], lr=0.01, eps=1e-12)
    topt = torch.optim.SparseAdam([t], lr=0.01, eps=1e-12)
    for _ in range(40):
        rows = rng.integers(0, 50, size=30)
        g = rng.standard_normal((30, 8))
        opt.step_rows(0, rows, g)
        t.grad = torch.sparse_coo_tensor(torch.tensor(rows)[None], torch.tensor(g), (50, 8), check_invariants=True)
        topt.step()
    # SparseAdam puts ε before the bias correction; with a tiny ε the two agree
    np.testing.assert_allclose(table, t.detach().numpy(), rtol=1e-7, atol=1e-9)


def test_step_rows_on_untrained_rows_and_empty_rows(rng):
    table = np.zeros((6, 2), np.float32)
    opt = SGD([table], lr=1.0, momentum=0.5)
    assert opt.step_rows(0, np.zeros(0, np.int64), np.zeros((0, 2), np.float32)) is True
    assert opt.state_of(0)["step"] == 1
    np.testing.assert_array_equal(table, 0)
    opt.step_rows(0, [0], np.ones((1, 2), np.float32))
    # second step of this parameter: the buffer of row 0 was zero, so it is 0.5·0 + 1·g
    np.testing.assert_array_equal(table[0], [-1, -1])


# ------------------------------------------------------------------------------------------ clipping
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.0, 0.5, 1e6])
def test_clip_grad_norm_matches_reference(max_norm, dtype, rng):
    grads = make([(40000,), (3, 3), (1,), (0,)], dtype, rng)
    mirror = copies(grads)
    norm = clip_grad_norm(grads, max_norm)
    want = ref.clip_grad_norm_ref(mirror, max_norm)
    assert isinstance(norm, float)
    assert norm == pytest.approx(want, rel=1e-12)
    for g, h in zip(grads, mirror):
        np.testing.assert_allclose(g, h, rtol=1e-6, atol=1e-12)
    if max_norm < want:
        assert ref.clip_grad_norm_ref(copies(grads), np.inf) == pytest.approx(max_norm, rel=1e-4, abs=1e-5)


def test_clip_grad_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    grads = make([(100,), (4, 5)], np.float32, rng)
    ts = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for t, g in zip(ts, grads):
        t.grad = torch.tensor(g.copy())
    want = float(torch.nn.utils.clip_grad_norm_(ts, 1.5))
    got = clip_grad_norm(grads, 1.5)
    assert got == pytest.approx(want, rel=1e-6)
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6)


def test_clip_grad_norm_thread_independent(rng):
    grads = make([(70000,), (5,)], np.float32, rng)
    norms = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            norms.append(clip_grad_norm(copies(grads), 1.0))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert norms[0] == norms[1]


def test_clip_grad_norm_nonfinite(rng):
    grads = [np.array([1.0, np.inf], np.float32)]
    with pytest.raises(ValueError, match="grads: the total gradient norm is non-finite"):
        clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    assert clip_grad_norm(grads, 1.0) == np.inf  # torch scales anyway
    assert np.isnan(grads[0][1])
    assert clip_grad_norm([], 1.0) == 0.0


def test_clip_grad_value(rng):
    grads = make([(50000,), (2, 3)], np.float32, rng)
    grads[1][0, 0] = np.nan
    mirror = copies(grads)
    clip_grad_value(grads, 0.5)
    ref.clip_grad_value_ref(mirror, 0.5)
    for g, h in zip(grads, mirror):
        np.testing.assert_array_equal(g, h)
    clip_grad_value(grads[0], 0.25)  # one array is accepted too
    assert np.abs(grads[0]).max() <= 0.25


@pytest.mark.parametrize("call, match", [
    (lambda g: clip_grad_norm(g, -1.0), "max_norm"),
    (lambda g: clip_grad_value(g, -1.0), "value"),
    (lambda g: clip_grad_norm([g[0], g[0].astype(np.float64)], 1.0), r"grads\[1\]"),
    (lambda g: clip_grad_norm([g[0][::2]], 1.0), r"grads\[0\]: must be C-contiguous"),
    (lambda g: clip_grad_value([[1.0, 2.0]], 1.0), r"grads\[0\]"),
    (lambda g: clip_grad_norm("abc", 1.0), "grads"),
])
def test_clip_bad_input(call, match, rng):
    with pytest.raises((TypeError, ValueError), match=match):
        call(make([(6,)], np.float32, rng))


# ------------------------------------------------------------------------------------ state and lr
@pytest.mark.parametrize("make_opt", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1),
    lambda p: Adam(p, lr=0.01, amsgrad=True),
    lambda p: AdamW(p, lr=0.01, weight_decay=0.2),
])
def test_state_dict_resume_is_bit_identical(make_opt, rng):
    params = make([(11, 3), (4,)], np.float32, rng)
    grads = [grads_like(params, rng) for _ in range(20)]
    rows = rng.integers(0, 11, size=8)
    rg = rng.standard_normal((8, 3)).astype(np.float32)
    opt = make_opt(params)
    for g in grads[:10]:
        opt.step(g)
    opt.step_rows(0, rows, rg)
    saved, saved_params = opt.state_dict(), copies(params)
    opt.lr = 0.02
    for g in grads[10:]:
        opt.step(g)

    resumed_params = copies(saved_params)
    opt2 = make_opt(resumed_params)
    opt2.load_state_dict(saved)
    assert opt2.lr == saved["hyper"]["lr"]
    opt2.lr = 0.02
    for g in grads[10:]:
        opt2.step(g)
    for a, b in zip(params, resumed_params):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(opt.steps, opt2.steps)


def test_load_state_dict_rejects_other_optimizers(rng):
    params = make([(3,)], np.float32, rng)
    sd = SGD(params, lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="state_dict: saved by optimizer 'SGD'"):
        Adam(params).load_state_dict(sd)
    with pytest.raises(ValueError, match="state_dict: saved by optimizer 'Adam'"):
        AdamW(params).load_state_dict(Adam(params).state_dict())
    with pytest.raises(ValueError, match="state_dict: parameter shapes"):
        SGD([np.zeros(4, np.float32)], lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="state_dict: dtype"):
        SGD([np.zeros(3, np.float64)], lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="state_dict: missing keys"):
        SGD(params, lr=0.1).load_state_dict({"optimizer": "SGD"})
    bad = dict(sd, hyper=dict(sd["hyper"], lr=-1.0))
    with pytest.raises(ValueError, match="lr"):
        SGD(params, lr=0.1, momentum=0.9).load_state_dict(bad)
    with pytest.raises(TypeError, match="state_dict"):
        SGD(params, lr=0.1).load_state_dict([1, 2])
    # hyper-parameters travel with the state: momentum 0 -> 0.9 brings its buffer
    opt = SGD(params, lr=0.5)
    opt.load_state_dict(sd)
    assert opt.momentum == 0.9 and opt.lr == 0.1


def test_lr_is_writeable_and_validated(rng):
    params = make([(3,)], np.float32, rng)
    opt = Adam(params, lr=0.1)
    opt.lr = 0.0
    before = params[0].copy()
    opt.step(grads_like(params, rng))
    np.testing.assert_array_equal(params[0], before)  # lr 0: no move
    with pytest.raises(ValueError, match="lr: must be >= 0"):
        opt.lr = -0.1
    with pytest.raises(TypeError, match="lr"):
        opt.lr = "fast"


# --------------------------------------------------------------------------------------- non-finite
def test_nonfinite_gradient_raises_naming_the_parameter(rng):
    params = make([(4,), (2, 3)], np.float32, rng)
    opt = Adam(params)
    g = grads_like(params, rng)
    g[1][1, 2] = np.nan
    before = copies(params)
    with pytest.raises(ValueError, match=r"grads\[1\]: non-finite value nan at index \(1, 2\) \(parameter 1"):
        opt.step(g)
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)
    assert opt.state_of(0)["step"] == 0
    with pytest.raises(ValueError, match="row_grads: non-finite value inf"):
        opt.step_rows(1, [0], np.array([[0, np.inf, 0]], np.float32))


def test_nonfinite_skip_leaves_everything_untouched(rng):
    params = make([(40000,), (3,)], np.float32, rng)
    opt = SGD(params, lr=0.1, momentum=0.9, nonfinite="skip")
    opt.step(grads_like(params, rng))
    before, state = copies(params), opt.state_dict()
    g = grads_like(params, rng)
    g[0][39999] = -np.inf
    assert opt.step(g) is False
    assert opt.step_rows(1, [0], [np.nan]) is False
    assert opt.skipped_steps == 2
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(opt.state_dict()["state"]["momentum_buffer"], state["state"]["momentum_buffer"])
    np.testing.assert_array_equal(opt.steps, [1, 1])


def test_nonfinite_propagate_is_torch_behaviour(rng):
    params = make([(3,)], np.float32, rng)
    opt = SGD(params, lr=0.1, nonfinite="propagate")
    assert opt.step([np.array([np.nan, 0, 0], np.float32)]) is True
    assert np.isnan(params[0][0]) and np.isfinite(params[0][1:]).all()


# ------------------------------------------------------------------------------------------ bad input
def _p(rng=np.random.default_rng(0)):
    return [rng.standard_normal((4, 3)).astype(np.float32), np.zeros(5, np.float32)]


@pytest.mark.parametrize("build, err, match", [
    (lambda: SGD(_p(), lr=-0.1), ValueError, "lr: must be >= 0"),
    (lambda: Adam(_p(), lr=-1e-3), ValueError, "lr: must be >= 0"),
    (lambda: Adam(_p(), betas=(1.0, 0.9)), ValueError, r"betas\[0\]: must be < 1"),
    (lambda: Adam(_p(), betas=(0.9, -0.1)), ValueError, r"betas\[1\]: must be >= 0"),
    (lambda: AdamW(_p(), betas=(0.9, 1.5)), ValueError, r"betas\[1\]: must be < 1"),
    (lambda: Adam(_p(), betas=(0.9,)), ValueError, "betas: expected a pair"),
    (lambda: Adam(_p(), eps=0.0), ValueError, "eps: must be > 0"),
    (lambda: Adam(_p(), eps=-1e-8), ValueError, "eps: must be > 0"),
    (lambda: Adam(_p(), weight_decay=-0.1), ValueError, "weight_decay: must be >= 0"),
    (lambda: AdamW(_p(), weight_decay=-1e-2), ValueError, "weight_decay: must be >= 0"),
    (lambda: SGD(_p(), lr=0.1, weight_decay=-1.0), ValueError, "weight_decay: must be >= 0"),
    (lambda: SGD(_p(), lr=0.1, nesterov=True), ValueError, "nesterov: Nesterov momentum requires momentum > 0"),
    (lambda: SGD(_p(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda: SGD(_p(), lr=0.1, momentum=-0.5), ValueError, "momentum: must be >= 0"),
    (lambda: SGD(_p(), lr=0.1, dampening=2.0), ValueError, "dampening: must be <= 1"),
    (lambda: SGD(_p(), lr=0.1, nesterov=1), TypeError, "nesterov: expected True or False"),
    (lambda: Adam(_p(), amsgrad="yes"), TypeError, "amsgrad"),
    (lambda: SGD(_p(), lr=float("nan")), ValueError, "lr: must be finite"),
    (lambda: SGD([], lr=0.1), ValueError, "params: the optimizer got an empty parameter list"),
    (lambda: SGD(np.zeros(3, np.float32), lr=0.1), TypeError, "params: expected a list"),
    (lambda: SGD([np.zeros(3, np.int64)], lr=0.1), TypeError, r"params\[0\]: expected float32 or float64"),
    (lambda: SGD([np.zeros((3, 4), np.float32)[:, ::2]], lr=0.1), TypeError, r"params\[0\]: must be C-contiguous"),
    (lambda: SGD([np.zeros(3, np.float32), np.zeros(3)], lr=0.1), TypeError, r"params\[1\]: dtype float64 differs"),
    (lambda: SGD([[1.0, 2.0]], lr=0.1), TypeError, r"params\[0\]: expected a numpy.ndarray"),
    (lambda: Adam(_p(), nonfinite="ignore"), ValueError, "nonfinite"),
])
def test_bad_hyper_parameters(build, err, match):
    with pytest.raises(err, match=match):
        build()


def test_shared_or_read_only_params_rejected():
    buf = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="params: parameters 0 and 1 share memory"):
        SGD([buf[:6], buf[4:]], lr=0.1)
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match=r"params\[0\]: array is read-only"):
        SGD([ro], lr=0.1)


@pytest.mark.parametrize("grads, err, match", [
    (lambda p: p[:1], ValueError, "grads: expected 2 arrays .one per parameter., got 1"),
    (lambda p: p + p, ValueError, "grads: expected 2 arrays"),
    (lambda p: [p[0], np.zeros(4, np.float32)], ValueError, r"grads\[1\]: shape \(4,\) does not match parameter 1's \(5,\)"),
    (lambda p: [p[0].T, p[1]], ValueError, r"grads\[0\]: shape \(3, 4\) does not match"),
    (lambda p: [p[0], np.array(["a"] * 5)], TypeError, r"grads\[1\]: expected a real numeric array"),
    (lambda p: p[0], TypeError, "grads: expected a list of 2 arrays"),
])
def test_bad_grads(grads, err, match):
    params = _p()
    opt = Adam(params)
    with pytest.raises(err, match=match):
        opt.step(grads([p.copy() for p in params]))


def test_grads_of_other_dtype_or_layout_are_converted(rng):
    params = make([(4, 3)], np.float32, rng)
    mirror = copies(params)
    g64 = rng.standard_normal((3, 4)).T  # float64, not C-contiguous
    SGD(params, lr=0.1).step([g64])
    ref.SGDRef(mirror, lr=0.1).step([g64.astype(np.float32)])
    np.testing.assert_array_equal(params[0], mirror[0])


@pytest.mark.parametrize("args, err, match", [
    ((2, [0], np.zeros((1, 3))), ValueError, "index: must be <= 1"),
    ((-1, [0], np.zeros((1, 3))), ValueError, "index: must be >= 0"),
    ((0.0, [0], np.zeros((1, 3))), TypeError, "index: expected an integer"),
    ((0, [4], np.zeros((1, 3))), ValueError, "rows: index 4 out of range for parameter 0 with 4 rows"),
    ((0, [-1], np.zeros((1, 3))), ValueError, "rows: negative id -1"),
    ((0, [0.5], np.zeros((1, 3))), TypeError, "rows: expected integer ids"),
    ((0, [0, 1], np.zeros((1, 3))), ValueError, r"row_grads: expected shape \[2, 3\]"),
    ((0, [0], np.zeros((1, 4))), ValueError, r"row_grads: expected shape \[1, 3\]"),
    ((0, [[0]], np.zeros((1, 3))), ValueError, "rows: expected a 1-d array"),
    ((1, [5], np.zeros(1)), ValueError, "rows: index 5 out of range for parameter 1 with 5 rows"),
])
def test_bad_step_rows(args, err, match):
    opt = SGD(_p(), lr=0.1, momentum=0.9)
    with pytest.raises(err, match=match):
        opt.step_rows(*args)


def test_scalar_parameter_has_no_rows():
    opt = SGD([np.zeros((), np.float32)], lr=0.1)
    opt.step([np.ones((), np.float32)])
    with pytest.raises(ValueError, match="index: parameter 0 is a scalar"):
        opt.step_rows(0, [0], np.zeros(1))


def test_optimizer_base_is_abstract_and_exported():
    assert issubclass(Adam, Optimizer) and issubclass(SGD, Optimizer)
    with pytest.raises(TypeError):
        Optimizer([np.zeros(2, np.float32)], 0.1)
    import fastgnn

    assert fastgnn.Adam is Adam and fastgnn.clip_grad_norm is clip_grad_norm
    assert "Adam(" in repr(Adam(_p()))


def test_reused_gradient_arrays_are_rechecked(rng):
    """The same gradient objects as last step skip re-validation, but in-place changes are still seen."""
    params = make([(6, 4), (3,)], np.float32, rng)
    mirror = copies(params)
    opt, oracle = Adam(params, lr=0.01), ref.AdamRef(mirror, lr=0.01)
    grads = grads_like(params, rng)
    for _ in range(3):
        for g in grads:
            g[...] = rng.standard_normal(g.shape)  # new values, same arrays
        opt.step(grads)
        oracle.step(grads)
    np.testing.assert_array_equal(params[0], mirror[0])
    grads[0].shape = (4, 6)
    with pytest.raises(ValueError, match=r"grads\[0\]: shape \(4, 6\) does not match parameter 0's \(6, 4\)"):
        opt.step(grads)
    grads[0].shape = (6, 4)
    grads[1][0] = np.nan
    with pytest.raises(ValueError, match=r"grads\[1\]: non-finite value nan at index 0"):
        opt.step(grads)
    assert opt.state_of(0)["step"] == 3
