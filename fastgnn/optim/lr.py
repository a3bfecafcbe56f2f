"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s values.

Every schedule takes ``(optimizer_or_base_lr, ...)``: built on an optimizer it reads the base rate from it
(the ``initial_lr`` recorded by the first schedule built on that optimizer, else ``optimizer.lr``), sets
``optimizer.lr = lr_at(0)`` at once, like torch, and writes ``optimizer.lr`` on every :meth:`step`; built on
a float it only computes. Every closed-form schedule (all but :class:`ReduceOnPlateau`) has a pure
``lr_at(step)``; torch's recursive updates give the same values up to float rounding.

Examples
--------
>>> from fastgnn.optim.lr import Cosine, LinearWarmup, Sequential
>>> warm = LinearWarmup(0.1, start_factor=0.25, warmup_steps=4)
>>> [round(warm.lr_at(t), 4) for t in range(6)]
[0.025, 0.0438, 0.0625, 0.0813, 0.1, 0.1]
>>> sched = Sequential(0.1, [warm, Cosine(0.1, t_max=10)], milestones=[4])
>>> round(sched.lr_at(9), 4)
0.05
"""
from __future__ import annotations

import bisect
import math
import numbers

from .. import _check

__all__ = [
    "LRSchedule",
    "ClosedFormSchedule",
    "Constant",
    "Exponential",
    "Step",
    "Cosine",
    "LinearWarmup",
    "Chain",
    "Sequential",
    "ReduceOnPlateau",
]


def _step_arg(step, name="step") -> int:
    return _check.integer(step, name, minimum=0)


class LRSchedule:
    """Base class of the schedules: base-rate resolution, ``step``, ``get_last_lr`` and ``state_dict``.

    Closed-form subclasses (:class:`ClosedFormSchedule`) define ``_lr_at(step)``; all keep their settings
    in ``self._config`` (re-validated by
    ``_configure`` when a state dict is loaded).

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
        An object with a writeable ``lr`` attribute, or the base learning rate (``>= 0``).

    Raises
    ------
    TypeError, ValueError
        neither an optimizer nor a real number ``>= 0``.

    Examples
    --------
    >>> from fastgnn.optim.lr import Step
    >>> s = Step(0.1, step_size=2)
    >>> s.step(); s.step()
    >>> s.last_step, round(s.get_last_lr(), 6), s.state_dict()["schedule"]
    (2, 0.01, 'Step')
    """

    def __init__(self, optimizer_or_base_lr):
        self.optimizer = None
        target = optimizer_or_base_lr
        if isinstance(target, numbers.Real) and not isinstance(target, bool):
            self.base_lr = _check.real(target, "optimizer_or_base_lr", minimum=0.0)
        elif hasattr(target, "lr") and hasattr(target, "step"):
            self.optimizer = target
            initial = getattr(target, "initial_lr", None)
            if initial is None:
                initial = float(target.lr)
                try:
                    target.initial_lr = initial
                except AttributeError:
                    pass
            self.base_lr = _check.real(initial, "optimizer_or_base_lr.lr", minimum=0.0)
        else:
            raise TypeError(
                f"optimizer_or_base_lr: expected an optimizer (with .lr) or a float, got {type(target).__name__}"
            )
        self.last_step = 0
        self._last_lr = self.base_lr

    def _apply(self, lr):
        self._last_lr = float(lr)
        if self.optimizer is not None:
            self.optimizer.lr = self._last_lr

    def get_last_lr(self) -> float:
        """The learning rate set by the last :meth:`step` (or at construction)."""
        return self._last_lr

    def state_dict(self) -> dict:
        """``{"schedule", "base_lr", "last_step", "last_lr", "config"}`` -- enough to resume."""
        return {
            "schedule": type(self).__name__,
            "base_lr": self.base_lr,
            "last_step": self.last_step,
            "last_lr": self._last_lr,
            "config": dict(self._config),
        }

    def load_state_dict(self, state_dict) -> None:
        """Restore a :meth:`state_dict` from the same schedule class (sets ``optimizer.lr`` to the saved value).

        Raises
        ------
        ValueError
            a state dict from another schedule class or with invalid values.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        kind = state_dict.get("schedule")
        if kind != type(self).__name__:
            raise ValueError(f"state_dict: saved by schedule {kind!r}, cannot load into {type(self).__name__}")
        base = _check.real(state_dict["base_lr"], "state_dict['base_lr']", minimum=0.0)
        last = _check.integer(state_dict["last_step"], "state_dict['last_step']", minimum=0)
        last_lr = _check.real(state_dict["last_lr"], "state_dict['last_lr']", minimum=0.0)
        self._configure(**state_dict["config"])
        self.base_lr = base
        self.last_step = last
        self._apply(last_lr)

    def _configure(self, **config):
        self._config = config

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}(base_lr={self.base_lr!r}, {cfg}, last_step={self.last_step})"


class ClosedFormSchedule(LRSchedule):
    """A schedule whose rate is a pure function of the step: ``lr_at(step)``; ``step()`` walks it.

    ``lr(t) = f(base, t)`` for the subclass's ``f``.

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
        See :class:`LRSchedule`.

    Examples
    --------
    >>> from fastgnn.optim.lr import ClosedFormSchedule, Exponential
    >>> s = Exponential(1.0, gamma=0.5)
    >>> isinstance(s, ClosedFormSchedule), s.lr_at(2), s.last_step
    (True, 0.25, 0)
    """

    def _start(self):
        # the value at step 0 is applied at construction, like torch's initial step
        self._apply(self._lr_at(0))

    def lr_at(self, step: int) -> float:
        """The learning rate at ``step`` (pure: reads only the settings).

        Raises
        ------
        TypeError, ValueError
            ``step`` not an int ``>= 0``.
        """
        return self._lr_at(_step_arg(step))

    def step(self) -> None:
        """Advance one step; set ``optimizer.lr`` when built on an optimizer."""
        self.last_step += 1
        self._apply(self._lr_at(self.last_step))


class Constant(ClosedFormSchedule):
    """``factor · base`` for the first ``total_iters`` steps, then ``base`` (``torch ConstantLR``); defaults to constant.

    ``lr(t) = base · (factor if t < total_iters else 1)``

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    factor : float, default 1.0
        In ``[0, 1]``.
    total_iters : int, default 0
        ``>= 0``.

    Examples
    --------
    >>> Constant(0.1).lr_at(100)
    0.1
    >>> Constant(0.1, factor=0.5, total_iters=2).lr_at(1)
    0.05
    """

    def __init__(self, optimizer_or_base_lr, factor=1.0, total_iters=0):
        super().__init__(optimizer_or_base_lr)
        self._configure(factor=factor, total_iters=total_iters)
        self._start()

    def _configure(self, factor, total_iters):
        self._config = {
            "factor": _check.real(factor, "factor", minimum=0.0, maximum=1.0),
            "total_iters": _check.integer(total_iters, "total_iters", minimum=0),
        }

    def _lr_at(self, t):
        c = self._config
        return self.base_lr * (c["factor"] if t < c["total_iters"] else 1.0)


class Exponential(ClosedFormSchedule):
    """``lr(t) = base · γᵗ`` (``torch ExponentialLR``).

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    gamma : float
        ``> 0``.

    Examples
    --------
    >>> round(Exponential(0.1, gamma=0.5).lr_at(3), 6)
    0.0125
    """

    def __init__(self, optimizer_or_base_lr, gamma):
        super().__init__(optimizer_or_base_lr)
        self._configure(gamma=gamma)
        self._start()

    def _configure(self, gamma):
        self._config = {"gamma": _check.real(gamma, "gamma", minimum=0.0, strict_min=True)}

    def _lr_at(self, t):
        return self.base_lr * self._config["gamma"] ** t


class Step(ClosedFormSchedule):
    """``lr(t) = base · γ^⌊t / step_size⌋`` (``torch StepLR``).

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    step_size : int
        ``>= 1``.
    gamma : float, default 0.1
        ``> 0``.

    Examples
    --------
    >>> [round(Step(1.0, step_size=2, gamma=0.5).lr_at(t), 3) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer_or_base_lr, step_size, gamma=0.1):
        super().__init__(optimizer_or_base_lr)
        self._configure(step_size=step_size, gamma=gamma)
        self._start()

    def _configure(self, step_size, gamma):
        self._config = {
            "step_size": _check.integer(step_size, "step_size", minimum=1),
            "gamma": _check.real(gamma, "gamma", minimum=0.0, strict_min=True),
        }

    def _lr_at(self, t):
        c = self._config
        return self.base_lr * c["gamma"] ** (t // c["step_size"])


class Cosine(ClosedFormSchedule):
    """``lr(t) = η_min + (base − η_min) · (1 + cos(π t / t_max)) / 2`` (``torch CosineAnnealingLR``).

    Past ``t_max`` the curve continues periodically, as torch's does.

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    t_max : int
        Half period in steps, ``>= 1``.
    eta_min : float, default 0.0
        ``>= 0``.

    Examples
    --------
    >>> Cosine(0.1, t_max=10).lr_at(5)
    0.05
    """

    def __init__(self, optimizer_or_base_lr, t_max, eta_min=0.0):
        super().__init__(optimizer_or_base_lr)
        self._configure(t_max=t_max, eta_min=eta_min)
        self._start()

    def _configure(self, t_max, eta_min):
        self._config = {
            "t_max": _check.integer(t_max, "t_max", minimum=1),
            "eta_min": _check.real(eta_min, "eta_min", minimum=0.0),
        }

    def _lr_at(self, t):
        c = self._config
        lo = c["eta_min"]
        return lo + (self.base_lr - lo) * (1 + math.cos(math.pi * t / c["t_max"])) / 2


class LinearWarmup(ClosedFormSchedule):
    """Linear ramp of the factor from ``start_factor`` to ``end_factor`` over ``warmup_steps`` (``torch LinearLR``).

    ``lr(t) = base · (s + (e − s) · min(t, T) / T)``. ``start_factor`` must be ``> 0``: the first warm-up
    step trains (it is never 0).

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    start_factor : float, default 1/3
        In ``(0, 1]``.
    warmup_steps : int, default 5
        ``T >= 1``.
    end_factor : float, default 1.0
        In ``[0, 1]``.

    Examples
    --------
    >>> [round(LinearWarmup(1.0, start_factor=0.5, warmup_steps=2).lr_at(t), 2) for t in range(4)]
    [0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer_or_base_lr, start_factor=1.0 / 3, warmup_steps=5, end_factor=1.0):
        super().__init__(optimizer_or_base_lr)
        self._configure(start_factor=start_factor, warmup_steps=warmup_steps, end_factor=end_factor)
        self._start()

    def _configure(self, start_factor, warmup_steps, end_factor):
        self._config = {
            "start_factor": _check.real(start_factor, "start_factor", minimum=0.0, maximum=1.0, strict_min=True),
            "warmup_steps": _check.integer(warmup_steps, "warmup_steps", minimum=1),
            "end_factor": _check.real(end_factor, "end_factor", minimum=0.0, maximum=1.0),
        }

    def _lr_at(self, t):
        c = self._config
        s, e, n = c["start_factor"], c["end_factor"], c["warmup_steps"]
        return self.base_lr * (s + (e - s) * min(t, n) / n)


def _children(schedules, base_lr, name="schedules"):
    if not isinstance(schedules, (list, tuple)) or not schedules:
        raise TypeError(f"{name}: expected a non-empty list of closed-form schedules")
    out = list(schedules)
    for i, s in enumerate(out):
        if not isinstance(s, ClosedFormSchedule):
            raise TypeError(f"{name}[{i}]: expected a closed-form schedule (not ReduceOnPlateau), got {type(s).__name__}")
        if not math.isclose(s.base_lr, base_lr, rel_tol=1e-12, abs_tol=0.0):
            raise ValueError(f"{name}[{i}]: its base lr {s.base_lr} differs from this schedule's {base_lr}")
    return out


class Chain(ClosedFormSchedule):
    """The product of several schedules' factors (``torch ChainedScheduler`` of multiplicative schedules).

    ``lr(t) = base · Π_k lr_k(t) / base``. Each child must share this schedule's base lr (build them on the
    same optimizer or the same float); their own ``step`` is not called.

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    schedules : list of LRSchedule
        Closed-form schedules.

    Examples
    --------
    >>> sched = Chain(1.0, [Exponential(1.0, gamma=0.5), LinearWarmup(1.0, start_factor=0.5, warmup_steps=2)])
    >>> [round(sched.lr_at(t), 4) for t in range(3)]
    [0.5, 0.375, 0.25]
    """

    def __init__(self, optimizer_or_base_lr, schedules):
        super().__init__(optimizer_or_base_lr)
        self.schedules = _children(schedules, self.base_lr)
        self._config = {"schedules": [type(s).__name__ for s in self.schedules]}
        self._start()

    def _configure(self, schedules):
        if list(schedules) != [type(s).__name__ for s in self.schedules]:
            raise ValueError(f"state_dict: saved for schedules {list(schedules)}, not {self._config['schedules']}")

    def _lr_at(self, t):
        if self.base_lr == 0:
            return 0.0
        lr = self.base_lr
        for s in self.schedules:
            lr *= s._lr_at(t) / self.base_lr
        return lr


class Sequential(ClosedFormSchedule):
    """One schedule after another, switching at ``milestones`` (``torch SequentialLR``).

    ``lr(t) = lr_k(t − m_{k−1})`` for ``m_{k−1} <= t < m_k`` (``m_{-1} = 0``): each schedule restarts at its
    milestone. Children must share this schedule's base lr.

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    schedules : list of LRSchedule
        ``k + 1`` closed-form schedules.
    milestones : list of int
        ``k`` strictly increasing steps ``>= 1``.

    Examples
    --------
    >>> s = Sequential(1.0, [Constant(1.0, factor=0.1, total_iters=2), Exponential(1.0, gamma=0.5)], [2])
    >>> [round(s.lr_at(t), 3) for t in range(5)]
    [0.1, 0.1, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer_or_base_lr, schedules, milestones):
        super().__init__(optimizer_or_base_lr)
        self.schedules = _children(schedules, self.base_lr)
        self._configure(schedules=[type(s).__name__ for s in self.schedules], milestones=milestones)
        self._start()

    def _configure(self, schedules, milestones):
        names = [type(s).__name__ for s in self.schedules]
        if list(schedules) != names:
            raise ValueError(f"state_dict: saved for schedules {list(schedules)}, not {names}")
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__len__"):
            raise TypeError(f"milestones: expected a list of ints, got {type(milestones).__name__}")
        ms = [_check.integer(m, f"milestones[{i}]", minimum=1) for i, m in enumerate(milestones)]
        if len(ms) != len(self.schedules) - 1:
            want = len(self.schedules) - 1
            raise ValueError(f"milestones: expected {want} values (one fewer than schedules), got {len(ms)}")
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones: must be strictly increasing, got {ms}")
        self._config = {"schedules": names, "milestones": ms}

    def _lr_at(self, t):
        ms = self._config["milestones"]
        k = bisect.bisect_right(ms, t)
        start = ms[k - 1] if k else 0
        return self.schedules[k]._lr_at(t - start)


class ReduceOnPlateau(LRSchedule):
    """Multiply the rate by ``factor`` when a metric stops improving (``torch ReduceLROnPlateau``).

    After more than ``patience`` steps without improvement (``a < best·(1−θ)`` for mode "min"/"rel",
    ``a < best − θ`` for "abs"; mirrored for "max"), ``lr ← max(lr·factor, min_lr)`` unless the change is
    below ``eps``, then ``cooldown`` steps ignore bad epochs. It has no ``lr_at``: the rate depends on
    the metrics seen.

    Parameters
    ----------
    optimizer_or_base_lr : Optimizer or float
    mode : {"min", "max"}, default "min"
    factor : float, default 0.1
        In ``[0, 1)``.
    patience : int, default 10
    threshold : float, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
    min_lr : float, default 0.0
    eps : float, default 1e-8

    Examples
    --------
    >>> s = ReduceOnPlateau(1.0, patience=1)
    >>> for loss in [3.0, 2.0, 2.0, 2.0]:
    ...     s.step(loss)
    >>> s.get_last_lr()
    0.1
    """

    def __init__(self, optimizer_or_base_lr, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        super().__init__(optimizer_or_base_lr)
        self._configure(mode=mode, factor=factor, patience=patience, threshold=threshold,
                        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        # like torch, construction leaves the optimizer's rate alone
        self._last_lr = float(self.optimizer.lr) if self.optimizer is not None else self.base_lr

    def _configure(self, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps):
        self._config = {
            "mode": _check.choice(mode, "mode", ("min", "max")),
            "factor": _check.real(factor, "factor", minimum=0.0, maximum=1.0, strict_max=True),
            "patience": _check.integer(patience, "patience", minimum=0),
            "threshold": _check.real(threshold, "threshold", minimum=0.0),
            "threshold_mode": _check.choice(threshold_mode, "threshold_mode", ("rel", "abs")),
            "cooldown": _check.integer(cooldown, "cooldown", minimum=0),
            "min_lr": _check.real(min_lr, "min_lr", minimum=0.0),
            "eps": _check.real(eps, "eps", minimum=0.0),
        }

    def _better(self, a):
        c = self._config
        rel = c["threshold_mode"] == "rel"
        if c["mode"] == "min":
            return a < (self.best * (1 - c["threshold"]) if rel else self.best - c["threshold"])
        return a > (self.best * (c["threshold"] + 1) if rel else self.best + c["threshold"])

    def step(self, metric) -> None:
        """Record one value of the monitored metric and reduce the rate if it has plateaued.

        Raises
        ------
        TypeError, ValueError
            ``metric`` not a real number, or NaN.
        """
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            try:
                metric = float(metric)  # 0-d arrays and numpy scalars
            except (TypeError, ValueError):
                raise TypeError(f"metric: expected a real number, got {type(metric).__name__}") from None
        metric = float(metric)
        if math.isnan(metric):
            raise ValueError("metric: is NaN")
        c = self._config
        self.last_step += 1
        if self._better(metric):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > c["patience"]:
            old = float(self.optimizer.lr) if self.optimizer is not None else self._last_lr
            new = max(old * c["factor"], c["min_lr"])
            if old - new > c["eps"]:
                self._apply(new)
            self.cooldown_counter = c["cooldown"]
            self.num_bad_epochs = 0

    def state_dict(self) -> dict:
        out = super().state_dict()
        out.update(best=self.best, num_bad_epochs=self.num_bad_epochs, cooldown_counter=self.cooldown_counter)
        return out

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self.best = float(state_dict["best"])
        self.num_bad_epochs = _check.integer(state_dict["num_bad_epochs"], "state_dict['num_bad_epochs']", minimum=0)
        self.cooldown_counter = _check.integer(state_dict["cooldown_counter"], "state_dict['cooldown_counter']",
                                               minimum=0)
