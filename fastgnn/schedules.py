"""Temperature annealing, loss-weight warm-up and curriculum stages for contrastive training.

All three are small pure-Python objects: ``value(step)`` / ``weights(step)`` / ``stage_at(epoch)`` are
pure functions of the step, ``step()`` advances an internal counter, and ``state_dict()`` /
``load_state_dict()`` round-trip that counter (and check the settings match).

Examples
--------
>>> from fastgnn.schedules import TemperatureScheduler, CurriculumScheduler
>>> TemperatureScheduler(1.0, 0.1, steps=10).value(5)
0.55
>>> cur = CurriculumScheduler.default()
>>> cur.stage.name, cur.temperature, cur.num_negatives
('easy', 0.5, 5)
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from . import _check

__all__ = ["TemperatureScheduler", "LossWeightScheduler", "CurriculumStage", "CurriculumScheduler"]

_TEMPERATURE_KINDS = ("linear", "exponential", "cosine", "step")
_WARMUP_KINDS = ("linear", "cosine")


def _step(step, name="step") -> int:
    return _check.integer(step, name, minimum=0)


def _check_state(state_dict, kind):
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
    if state_dict.get("scheduler") != kind:
        raise ValueError(f"state_dict: saved by {state_dict.get('scheduler')!r}, cannot load into {kind}")


class TemperatureScheduler:
    """Anneal a softmax temperature τ from ``initial`` to ``final`` over ``steps`` steps, then hold it.

    With ``x = min(t, T) / T``: linear ``τ = (1 − x)·a + x·b``; exponential ``τ = a·(b/a)^x``; cosine
    ``τ = b + (a − b)·(1 + cos πx)/2`` (monotone); step ``τ = a·γ^⌊t/step_size⌋``, never past ``b``.

    Parameters
    ----------
    initial, final : float
        Start and end temperatures, both ``> 0``.
    steps : int
        ``T >= 1``.
    kind : {"linear", "exponential", "cosine", "step"}, default "linear"
    step_size : int, optional
        Steps between drops (``kind="step"`` only, required there).
    gamma : float, default 0.5
        Factor per drop (``kind="step"``): ``< 1`` when annealing down, ``> 1`` when going up.

    Raises
    ------
    TypeError, ValueError
        a bad setting (the message names it).

    Examples
    --------
    >>> t = TemperatureScheduler(1.0, 0.1, steps=10)
    >>> t.value(5), t.value(50)
    (0.55, 0.1)
    >>> TemperatureScheduler(1.0, 0.1, steps=10, kind="step", step_size=3, gamma=0.5).value(7)
    0.25
    """

    def __init__(self, initial=1.0, final=0.1, steps=100, kind="linear", *, step_size=None, gamma=0.5):
        self.initial = _check.real(initial, "initial", minimum=0.0, strict_min=True)
        self.final = _check.real(final, "final", minimum=0.0, strict_min=True)
        self.steps = _check.integer(steps, "steps", minimum=1)
        self.kind = _check.choice(kind, "kind", _TEMPERATURE_KINDS)
        self.gamma = _check.real(gamma, "gamma", minimum=0.0, strict_min=True)
        if self.kind == "step":
            if step_size is None:
                raise ValueError("step_size: required when kind='step'")
            step_size = _check.integer(step_size, "step_size", minimum=1)
            if self.final < self.initial and self.gamma >= 1 or self.final > self.initial and self.gamma <= 1:
                raise ValueError(f"gamma: {self.gamma} moves away from final={self.final} (initial={self.initial})")
        elif step_size is not None:
            raise ValueError(f"step_size: only used with kind='step', got kind={self.kind!r}")
        self.step_size = step_size
        self.last_step = 0

    def value(self, step: int) -> float:
        """The temperature at ``step`` (pure)."""
        t = _step(step)
        a, b = self.initial, self.final
        if self.kind == "step":
            v = a * self.gamma ** (t // self.step_size)
            return max(v, b) if b <= a else min(v, b)
        x = min(t, self.steps) / self.steps
        if self.kind == "linear":
            return (1 - x) * a + x * b  # exact at both ends
        if self.kind == "exponential":
            return a * (b / a) ** x
        return b + (a - b) * (1 + math.cos(math.pi * x)) / 2

    @property
    def current(self) -> float:
        """The temperature at the current step."""
        return self.value(self.last_step)

    def step(self) -> float:
        """Advance one step and return the new temperature."""
        self.last_step += 1
        return self.current

    def _config(self):
        return {"initial": self.initial, "final": self.final, "steps": self.steps, "kind": self.kind,
                "step_size": self.step_size, "gamma": self.gamma}

    def state_dict(self) -> dict:
        """``{"scheduler", "last_step", "config"}``."""
        return {"scheduler": "TemperatureScheduler", "last_step": self.last_step, "config": self._config()}

    def load_state_dict(self, state_dict) -> None:
        """Restore the step counter; the saved settings must equal these (``ValueError`` otherwise)."""
        _check_state(state_dict, "TemperatureScheduler")
        if state_dict.get("config") != self._config():
            raise ValueError(f"state_dict: settings {state_dict.get('config')} differ from {self._config()}")
        self.last_step = _check.integer(state_dict["last_step"], "state_dict['last_step']", minimum=0)

    def __repr__(self):
        return f"TemperatureScheduler({self.initial} -> {self.final}, steps={self.steps}, kind={self.kind!r})"


def _weights(value, name):
    if not isinstance(value, dict) or not value:
        raise TypeError(f"{name}: expected a non-empty dict of loss name -> weight, got {type(value).__name__}")
    out = {}
    for k, w in value.items():
        if not isinstance(k, str):
            raise TypeError(f"{name}: keys must be loss names (str), got {k!r}")
        out[k] = _check.real(w, f"{name}[{k!r}]", minimum=0.0)
    return out


class LossWeightScheduler:
    """Warm loss weights up from ``initial`` to ``target`` over ``warmup_steps`` steps, then hold them.

    ``w_k(t) = (1 − f)·a_k + f·b_k``, ``f = f(min(t, T)/T)`` with ``f(x) = x`` (linear) or
    ``(1 − cos πx)/2`` (cosine).

    Parameters
    ----------
    initial, target : dict of str to float
        Weights ``>= 0`` with the same keys.
    warmup_steps : int
        ``T >= 0`` (0: the target from the start).
    kind : {"linear", "cosine"}, default "linear"

    Raises
    ------
    TypeError, ValueError
        bad weights, mismatched keys, a negative ``warmup_steps`` or unknown ``kind``.

    Examples
    --------
    >>> s = LossWeightScheduler({"infonce": 1.0, "spectral": 0.0}, {"infonce": 1.0, "spectral": 0.2}, 4)
    >>> s.weights(2)
    {'infonce': 1.0, 'spectral': 0.1}
    """

    def __init__(self, initial, target, warmup_steps, kind="linear"):
        self.initial = _weights(initial, "initial")
        self.target = _weights(target, "target")
        if set(self.initial) != set(self.target):
            raise ValueError(f"target: keys {sorted(self.target)} differ from initial's {sorted(self.initial)}")
        self.warmup_steps = _check.integer(warmup_steps, "warmup_steps", minimum=0)
        self.kind = _check.choice(kind, "kind", _WARMUP_KINDS)
        self.last_step = 0

    def weights(self, step: int) -> dict:
        """The weights at ``step`` (pure), as a new dict in ``initial``'s key order."""
        t = _step(step)
        x = 1.0 if self.warmup_steps == 0 else min(t, self.warmup_steps) / self.warmup_steps
        f = x if self.kind == "linear" else (1 - math.cos(math.pi * x)) / 2
        return {k: (1 - f) * a + f * self.target[k] for k, a in self.initial.items()}

    @property
    def current(self) -> dict:
        """The weights at the current step."""
        return self.weights(self.last_step)

    def step(self) -> dict:
        """Advance one step and return the new weights."""
        self.last_step += 1
        return self.current

    def _config(self):
        return {"initial": dict(self.initial), "target": dict(self.target), "warmup_steps": self.warmup_steps,
                "kind": self.kind}

    def state_dict(self) -> dict:
        """``{"scheduler", "last_step", "config"}``."""
        return {"scheduler": "LossWeightScheduler", "last_step": self.last_step, "config": self._config()}

    def load_state_dict(self, state_dict) -> None:
        """Restore the step counter; the saved settings must equal these (``ValueError`` otherwise)."""
        _check_state(state_dict, "LossWeightScheduler")
        if state_dict.get("config") != self._config():
            raise ValueError(f"state_dict: settings {state_dict.get('config')} differ from {self._config()}")
        self.last_step = _check.integer(state_dict["last_step"], "state_dict['last_step']", minimum=0)

    def __repr__(self):
        return f"LossWeightScheduler({self.initial} -> {self.target}, warmup_steps={self.warmup_steps})"


@dataclasses.dataclass(frozen=True)
class CurriculumStage:
    """One curriculum stage: how long it lasts and the training settings it implies.

    A sample of difficulty ``d`` takes part in the stage when ``d <= difficulty_threshold``.

    Parameters
    ----------
    name : str
    epochs : int
        ``>= 1``.
    temperature : float
        ``> 0``.
    num_negatives : int
        ``>= 1``.
    loss_weights : dict of str to float
        Weights ``>= 0`` (e.g. ``infonce``, ``local``, ``spectral``, ``reconstruction``).
    difficulty_threshold : float
        In ``[0, 1]``.

    Raises
    ------
    TypeError, ValueError
        a bad field (the message names it).

    Examples
    --------
    >>> CurriculumStage("warm", 2, 0.5, 4, {"infonce": 1.0}, 0.3).epochs
    2
    """

    name: str
    epochs: int
    temperature: float
    num_negatives: int
    loss_weights: dict
    difficulty_threshold: float

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name: expected a non-empty str, got {self.name!r}")
        set_ = object.__setattr__
        set_(self, "epochs", _check.integer(self.epochs, "epochs", minimum=1))
        set_(self, "temperature", _check.real(self.temperature, "temperature", minimum=0.0, strict_min=True))
        set_(self, "num_negatives", _check.integer(self.num_negatives, "num_negatives", minimum=1))
        set_(self, "loss_weights", _weights(self.loss_weights, "loss_weights"))
        set_(self, "difficulty_threshold",
             _check.real(self.difficulty_threshold, "difficulty_threshold", minimum=0.0, maximum=1.0))

    __hash__ = None  # loss_weights is a dict


class CurriculumScheduler:
    """Walk through :class:`CurriculumStage` s, one epoch per :meth:`step`; the last stage holds once reached.

    Parameters
    ----------
    stages : list of CurriculumStage
        At least one, with distinct names.

    Raises
    ------
    TypeError, ValueError
        an empty list, a non-stage item or repeated names.

    Examples
    --------
    >>> cur = CurriculumScheduler.default()
    >>> changed = [cur.step() for _ in range(10)]
    >>> changed[-1], cur.stage.name, cur.should_include(0.4)
    (True, 'medium', True)
    """

    def __init__(self, stages):
        if not isinstance(stages, (list, tuple)) or not stages:
            raise TypeError("stages: expected a non-empty list of CurriculumStage")
        for i, s in enumerate(stages):
            if not isinstance(s, CurriculumStage):
                raise TypeError(f"stages[{i}]: expected a CurriculumStage, got {type(s).__name__}")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: names must be distinct, got {names}")
        self.stages = list(stages)
        self._ends = np.cumsum([s.epochs for s in self.stages]).tolist()
        self.epoch = 0

    @classmethod
    def default(cls) -> "CurriculumScheduler":
        """Easy (10 epochs, τ 0.5, 5 negatives, threshold 0.3) → Medium (20, 0.3, 10, 0.5) → Hard (30, 0.1, 20, 0.7).

        Loss weights (infonce, local, spectral, reconstruction): (1, 0.5, 0.1, 0.5) → (1, 0.3, 0.05, 0.3) →
        (1, 0.1, 0.01, 0.1).
        """
        def w(a, b, c, d):
            return {"infonce": a, "local": b, "spectral": c, "reconstruction": d}

        return cls([
            CurriculumStage("easy", 10, 0.5, 5, w(1.0, 0.5, 0.1, 0.5), 0.3),
            CurriculumStage("medium", 20, 0.3, 10, w(1.0, 0.3, 0.05, 0.3), 0.5),
            CurriculumStage("hard", 30, 0.1, 20, w(1.0, 0.1, 0.01, 0.1), 0.7),
        ])

    @property
    def total_epochs(self) -> int:
        """Sum of the stages' epochs."""
        return self._ends[-1]

    def stage_index_at(self, epoch: int) -> int:
        """Index of the stage in force at ``epoch`` (pure; the last one past the end)."""
        e = _step(epoch, "epoch")
        for k, end in enumerate(self._ends):
            if e < end:
                return k
        return len(self.stages) - 1

    def stage_at(self, epoch: int) -> CurriculumStage:
        """The stage in force at ``epoch`` (pure)."""
        return self.stages[self.stage_index_at(epoch)]

    @property
    def stage_index(self) -> int:
        return self.stage_index_at(self.epoch)

    @property
    def stage(self) -> CurriculumStage:
        """The current stage."""
        return self.stages[self.stage_index]

    @property
    def finished(self) -> bool:
        """True once every stage's epochs have run."""
        return self.epoch >= self.total_epochs

    @property
    def temperature(self) -> float:
        return self.stage.temperature

    @property
    def num_negatives(self) -> int:
        return self.stage.num_negatives

    @property
    def loss_weights(self) -> dict:
        return dict(self.stage.loss_weights)

    @property
    def difficulty_threshold(self) -> float:
        return self.stage.difficulty_threshold

    def step(self) -> bool:
        """Finish one epoch; True when this moves the curriculum into a new stage."""
        before = self.stage_index
        self.epoch += 1
        return self.stage_index != before

    def should_include(self, difficulty):
        """Whether a sample of ``difficulty`` takes part now: ``difficulty <= stage.difficulty_threshold``.

        Parameters
        ----------
        difficulty : float or array of float
            Finite values.

        Returns
        -------
        bool or ndarray of bool
            Same shape as ``difficulty``.
        """
        if isinstance(difficulty, numbers.Real) and not isinstance(difficulty, bool):
            d = _check.real(difficulty, "difficulty")
            return d <= self.stage.difficulty_threshold
        arr = _check.float_array(difficulty, "difficulty", dtype=np.float64)
        return arr <= self.stage.difficulty_threshold

    def state_dict(self) -> dict:
        """``{"scheduler", "epoch", "stages"}`` (stages as dicts)."""
        return {"scheduler": "CurriculumScheduler", "epoch": self.epoch,
                "stages": [dataclasses.asdict(s) for s in self.stages]}

    def load_state_dict(self, state_dict) -> None:
        """Restore the epoch; the saved stages must equal these (``ValueError`` otherwise)."""
        _check_state(state_dict, "CurriculumScheduler")
        mine = [dataclasses.asdict(s) for s in self.stages]
        if state_dict.get("stages") != mine:
            raise ValueError("state_dict: saved for other curriculum stages")
        self.epoch = _check.integer(state_dict["epoch"], "state_dict['epoch']", minimum=0)

    def __repr__(self):
        names = " -> ".join(f"{s.name}({s.epochs})" for s in self.stages)
        return f"CurriculumScheduler({names}, epoch={self.epoch})"
