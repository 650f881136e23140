"""Fit the CPT law to pilot runs (App. C of the paper, with a sturdier optimiser).

Objective: Huber loss (``delta`` ~1e-3) of the log residuals ``log(pred) - log(observed)``,
pooled over every pilot run and the PT-phase points where they are logged.

Optimiser: bounded trust-region least squares (``scipy.optimize.least_squares``, method
``trf``, ``loss="huber"``), which minimises exactly that Huber objective and, unlike
L-BFGS-B on the summed loss, uses the residuals' Jacobian. Starts: many random draws of
the shape parameters, each completed by the bounded linear least-squares solution for the
linear ones (variable projection); the best few are polished. Deterministic for a seed.

Uncertainty: each pilot is left out in turn and the law refitted (warm-started). The
leave-one-pilot-out (LOPO) fits give (i) the cross-validated error used to select law
variants and (ii) jackknife standard errors of parameters and of every prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from cptopt.areas import Areas, cpt_point_areas
from cptopt.exceptions import FitError, InputError
from cptopt.law import CptLaw, make_law
from cptopt.runs import PilotSet

#: A parameter is "at a bound" when within this share of its range from it.
BOUND_TOLERANCE = 1e-4


@dataclass(frozen=True)
class FitData:
    """Pooled observations of one validation set: areas, losses, and their origin.

    ``run_index[i]`` is the pilot index of point ``i`` (-1 for PT-phase points);
    ``step[i]`` its step (CPT step, or PT step for PT-phase points).
    """

    areas: Areas
    loss: np.ndarray
    run_index: np.ndarray
    step: np.ndarray

    def take(self, mask: np.ndarray) -> FitData:
        return FitData(
            self.areas.take(mask), self.loss[mask], self.run_index[mask], self.step[mask]
        )


def collect_points(pilots: PilotSet, validation_set: str, lam: float) -> FitData:
    """Pool every pilot's curve of ``validation_set`` (and PT-phase points, if logged)."""
    parts: list[Areas] = []
    losses, run_index, steps = [], [], []
    pt_areas = pilots.pretrain.areas(lam) if pilots.pretrain.known else None
    for index, run in enumerate(pilots.runs):
        curve = run.curve(validation_set)
        if curve is None:
            continue
        state = pilots.pretrain.checkpoint_state(run.checkpoint, lam)
        parts.append(cpt_point_areas(run.cpt_lr, curve.steps, lam, state, run.replay_ratio))
        losses.append(curve.values)
        run_index.append(np.full(len(curve), index))
        steps.append(curve.steps)
    pt_curve = pilots.pretrain.curve(validation_set)
    if pt_areas is not None and pt_curve is not None and pilots.use_pretrain_points:
        # PT points before the end of warmup are outside what Tissue's law describes.
        keep = (pt_curve.steps > pilots.pretrain.warmup_steps) & (
            pt_curve.steps <= pt_areas.s1.size
        )
        pt_steps = pt_curve.steps[keep]
        s1, s2 = pt_areas.at_steps(pt_steps)
        zeros = np.zeros(pt_steps.size)
        parts.append(Areas(s1, s2, zeros, zeros, np.ones(pt_steps.size)))
        losses.append(pt_curve.values[keep])
        run_index.append(np.full(pt_steps.size, -1))
        steps.append(pt_steps)
    if not parts:
        raise InputError(f"no pilot logs a {validation_set} loss")
    return FitData(
        Areas.concatenate(parts),
        np.concatenate(losses),
        np.concatenate(run_index),
        np.concatenate(steps),
    )


# ----------------------------------------------------------------------------- optimiser


@dataclass
class _Problem:
    """One least-squares problem: a law form and the data, in the optimiser's coordinates."""

    law: CptLaw
    data: FitData
    delta: float
    is_log: np.ndarray = field(init=False)
    lower: np.ndarray = field(init=False)
    upper: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        specs = self.law.specs
        self.is_log = np.array([s.log for s in specs])
        self.lower = np.array([np.log(s.lower) if s.log else s.lower for s in specs])
        self.upper = np.array([np.log(s.upper) if s.log else s.upper for s in specs])
        self.log_loss = np.log(self.data.loss)

    def to_values(self, internal: np.ndarray) -> np.ndarray:
        values = np.array(internal, dtype=float)
        values[..., self.is_log] = np.exp(values[..., self.is_log])
        return values

    def to_internal(self, values: np.ndarray) -> np.ndarray:
        return np.where(self.is_log, np.log(np.maximum(values, 1e-300)), values)

    def residuals(self, internal: np.ndarray) -> np.ndarray:
        predicted = self.law.evaluate(self.to_values(internal), self.data.areas)
        return np.log(np.maximum(predicted, 1e-12)) - self.log_loss

    def jacobian(self, internal: np.ndarray) -> np.ndarray:
        """d residual / d internal parameter, shape ``(n_points, P)``.

        Columns of linear parameters are the law's basis (exact); shape parameters use one
        forward difference each, evaluated for all of them in a single vectorised call.
        """
        law = self.law
        values = self.to_values(internal)
        shape, linear = law.split(values)
        basis = law.basis(shape, self.data.areas)
        predicted = np.maximum(basis @ linear, 1e-12)
        jac = np.empty((predicted.size, values.size))
        for column, name in enumerate(law.linear_names):
            jac[:, law.names.index(name)] = basis[:, column]
        shape_index = [law.names.index(name) for name in law.shape_names]
        steps = 1e-7 * np.maximum(np.abs(internal[shape_index]), 1.0)
        shifted = np.repeat(internal[None, :], len(shape_index), axis=0)
        shifted[np.arange(len(shape_index)), shape_index] += steps
        bumped = law.evaluate(self.to_values(shifted), self.data.areas)
        jac[:, shape_index] = ((bumped - predicted) / steps[:, None]).T
        is_log = self.is_log
        jac[:, is_log & ~np.isin(np.arange(values.size), shape_index)] *= values[
            is_log & ~np.isin(np.arange(values.size), shape_index)
        ]
        return jac / predicted[:, None]

    def cost(self, internal: np.ndarray) -> float:
        """Huber objective (the same scale as ``least_squares``' ``cost``)."""
        z = (self.residuals(internal) / self.delta) ** 2
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
        return 0.5 * self.delta**2 * float(rho.sum())

    def solve(self, x0: np.ndarray, max_nfev: int | None = None) -> tuple[np.ndarray, float, int]:
        x0 = np.clip(x0, self.lower + 1e-10, self.upper - 1e-10)
        result = least_squares(
            self.residuals,
            x0,
            jac=self.jacobian,
            bounds=(self.lower, self.upper),
            method="trf",
            loss="huber",
            f_scale=self.delta,
            x_scale="jac",
            max_nfev=max_nfev,
        )
        return result.x, float(result.cost), int(result.nfev)


def _linear_completion(
    problem: _Problem, shape_values: dict[str, float]
) -> tuple[np.ndarray, float]:
    """Best linear parameters (bounded, relative least squares) for fixed shape parameters."""
    law = problem.law
    shape = {name: np.asarray([value]) for name, value in shape_values.items()}
    basis = law.basis(shape, problem.data.areas)
    weights = 1.0 / problem.data.loss
    specs = {s.name: s for s in law.specs}
    lower = [specs[name].lower for name in law.linear_names]
    upper = [specs[name].upper for name in law.linear_names]
    solution = lsq_linear(
        basis * weights[:, None], problem.data.loss * weights, bounds=(lower, upper)
    )
    values = np.empty(len(law.names))
    for name, value in shape_values.items():
        values[law.names.index(name)] = value
    for name, value in zip(law.linear_names, solution.x, strict=True):
        values[law.names.index(name)] = value
    return values, float(solution.cost)


def _random_shapes(law: CptLaw, rng: np.random.Generator, count: int) -> list[dict[str, float]]:
    draws = []
    for _ in range(count):
        shape = {}
        for spec in law.specs:
            if spec.linear:
                continue
            if spec.log:
                shape[spec.name] = float(
                    np.exp(rng.uniform(np.log(spec.start_low), np.log(spec.start_high)))
                )
            else:
                shape[spec.name] = float(rng.uniform(spec.start_low, spec.start_high))
        draws.append(shape)
    return draws


@dataclass(frozen=True)
class SingleFit:
    """The best parameters of one law on one data set, and how they were found."""

    values: np.ndarray
    cost: float
    nfev: int
    start_costs: tuple[float, ...]


def optimise(
    law: CptLaw,
    data: FitData,
    *,
    delta: float,
    rng: np.random.Generator,
    n_starts: int,
    n_screen: int,
    warm_start: np.ndarray | None = None,
) -> SingleFit:
    """Multi-start fit of ``law`` to ``data``; see the module docstring."""
    problem = _Problem(law, data, delta)
    candidates: list[np.ndarray] = []
    if warm_start is not None:
        candidates.append(problem.to_internal(warm_start))
    if n_starts > len(candidates):
        screened = [
            _linear_completion(problem, shape) for shape in _random_shapes(law, rng, n_screen)
        ]
        screened.sort(key=lambda item: item[1])
        for values, _ in screened[: n_starts - len(candidates)]:
            candidates.append(problem.to_internal(values))
    best: tuple[np.ndarray, float] | None = None
    nfev = 0
    costs = []
    for x0 in candidates:
        try:
            x, cost, used = problem.solve(x0)
        except (ValueError, np.linalg.LinAlgError):
            continue
        nfev += used
        costs.append(cost)
        if np.isfinite(cost) and (best is None or cost < best[1]):
            best = (x, cost)
    if best is None:
        raise FitError(f"every start failed to fit the {law.validation_set} law")
    return SingleFit(problem.to_values(best[0]), best[1], nfev, tuple(costs))


def relative_residuals(law: CptLaw, values: np.ndarray, data: FitData) -> np.ndarray:
    """``pred / observed - 1`` at every point."""
    return law.evaluate(values, data.areas) / data.loss - 1.0


def at_bound(law: CptLaw, values: np.ndarray) -> list[str]:
    """Names of parameters within ``BOUND_TOLERANCE`` of a finite, non-sign bound."""
    names = []
    for spec, value in zip(law.specs, values, strict=True):
        low, high = (
            (np.log(spec.lower), np.log(spec.upper)) if spec.log else (spec.lower, spec.upper)
        )
        internal = np.log(value) if spec.log else value
        width = high - low
        # A linear coefficient sitting at 0 means "term switched off", which is a sign
        # constraint doing its job; still worth reporting, so only lower==0 linear is kept.
        if internal - low <= BOUND_TOLERANCE * width or high - internal <= BOUND_TOLERANCE * width:
            names.append(spec.name)
    return names


def make_law_for(form: str, validation_set: str, pilots: PilotSet, replay_terms: bool) -> CptLaw:
    """The law form for this pilot set (black-box mode follows the PT history)."""
    return make_law(form, validation_set, replay_terms, pilots.pretrain.known)


def check_enough_points(law: CptLaw, data: FitData) -> None:
    """Raise when there are fewer observations than free parameters."""
    if data.loss.size <= len(law.names):
        raise InputError(
            f"{law.validation_set} loss: {data.loss.size} points for {len(law.names)} "
            "parameters; log more evaluation points or add pilots"
        )


# ----------------------------------------------------------------------------- estimator


def _jackknife_se(replicas: np.ndarray) -> np.ndarray:
    """Jackknife standard error over leave-one-out replicas (axis 0)."""
    n = replicas.shape[0]
    return np.sqrt((n - 1) / n * ((replicas - replicas.mean(axis=0)) ** 2).sum(axis=0))


def _robust_sd(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


class LawFitter:
    """Fits the CPT law to a :class:`~cptopt.runs.PilotSet` (scikit-learn style).

    The constructor only stores settings; :meth:`fit` validates the pilots, fits both
    validation sets and sets ``law_`` (a :class:`~cptopt.lawfile.FittedLaw`).

    Parameters
    ----------
    form : law form name (``"paper"``: Eq. 4 / Eq. 8).
    lam : annealing-memory factor of the m-recursion (paper: 0.999).
    huber_delta : Huber threshold on log residuals (paper: 1e-3).
    n_starts : polished starts per fit; ``n_screen`` random shapes are screened for them.
    seed : seed of the random starts (same seed, same law).
    jackknife : refit leaving each pilot out (CV error and uncertainties); needs >= 3 pilots.
    """

    def __init__(
        self,
        form: str = "paper",
        lam: float = 0.999,
        huber_delta: float = 1e-3,
        n_starts: int = 4,
        n_screen: int = 64,
        seed: int = 0,
        jackknife: bool = True,
    ) -> None:
        self.form = form
        self.lam = lam
        self.huber_delta = huber_delta
        self.n_starts = n_starts
        self.n_screen = n_screen
        self.seed = seed
        self.jackknife = jackknife

    def fit(self, pilots: PilotSet) -> LawFitter:
        """Fit both validation sets; returns ``self`` with ``law_`` set."""
        from cptopt.lawfile import FittedLaw

        if not 0 < self.lam < 1:
            raise InputError(f"lam == {self.lam}, must be in (0, 1)")
        replay_ratios = sorted({run.replay_ratio for run in pilots.runs})
        replay_terms = len(replay_ratios) >= 2
        notes = list(dict.fromkeys(note for run in pilots.runs for note in run.notes))
        if not replay_terms:
            notes.append(
                f"all pilots use replay ratio {replay_ratios[0]:g}: the replay terms are not "
                "identifiable, so the law predicts that ratio only (replay is fixed)"
            )
        elif len(replay_ratios) == 2:
            notes.append("only 2 distinct replay ratios: the replay terms are weakly identified")
        sets = {}
        for validation_set in ("general", "domain"):
            sets[validation_set] = self._fit_set(pilots, validation_set, replay_terms)
        self.law_ = FittedLaw(
            form=self.form,
            lam=self.lam,
            huber_delta=self.huber_delta,
            seed=self.seed,
            replay_terms=replay_terms,
            notes=notes,
            pretrain=_pretrain_record(pilots),
            coverage=_coverage(pilots),
            general=sets["general"],
            domain=sets["domain"],
            inputs=_inputs(pilots),
        )
        return self

    def _fit_set(self, pilots: PilotSet, validation_set: str, replay_terms: bool):
        from cptopt.law import Parameter
        from cptopt.lawfile import RunFit, SetFit

        law = make_law_for(self.form, validation_set, pilots, replay_terms)
        data = collect_points(pilots, validation_set, self.lam)
        check_enough_points(law, data)
        rng = np.random.default_rng([self.seed, 0 if validation_set == "general" else 1])
        best = optimise(
            law,
            data,
            delta=self.huber_delta,
            rng=rng,
            n_starts=self.n_starts,
            n_screen=self.n_screen,
        )
        residuals = relative_residuals(law, best.values, data)
        cpt_points = (data.run_index >= 0) & (data.step > 0)
        log_residuals = np.log1p(residuals)

        replicas: list[np.ndarray] = []
        cv: dict[int, tuple[float, float]] = {}
        run_ids = sorted({int(i) for i in data.run_index if i >= 0})
        if self.jackknife and len(run_ids) >= 3:
            for index in run_ids:
                keep = data.run_index != index
                refit = optimise(
                    law,
                    data.take(keep),
                    delta=self.huber_delta,
                    rng=rng,
                    n_starts=2,
                    n_screen=self.n_screen // 2,
                    warm_start=best.values,
                )
                replicas.append(refit.values)
                held = (data.run_index == index) & (data.step > 0)
                held_residual = relative_residuals(law, refit.values, data.take(held))
                cv[index] = (float(np.abs(held_residual).mean()), float(held_residual[-1]))
        replica_array = np.array(replicas) if replicas else None
        stderr = _jackknife_se(replica_array) if replica_array is not None else None

        run_fits = []
        for index in run_ids:
            mask = (data.run_index == index) & (data.step > 0)
            if not mask.any():
                continue
            errors = residuals[mask]
            cv_mean, cv_final = cv.get(index, (None, None))
            run_fits.append(
                RunFit(
                    name=pilots.runs[index].name,
                    n_points=int(mask.sum()),
                    mean_abs_error=float(np.abs(errors).mean()),
                    max_abs_error=float(np.abs(errors).max()),
                    final_error=float(errors[-1]),
                    cv_mean_abs_error=cv_mean,
                    cv_final_error=cv_final,
                )
            )
        bound_names = at_bound(law, best.values)
        parameters = []
        weak = []
        for i, spec in enumerate(law.specs):
            se = None if stderr is None else float(stderr[i])
            value = float(best.values[i])
            if se is not None and (value == 0 or se > abs(value)):
                weak.append(spec.name)
            parameters.append(
                Parameter(
                    name=spec.name,
                    value=value,
                    min=spec.lower,
                    max=spec.upper,
                    stderr=se,
                    at_bound=spec.name in bound_names,
                    description=spec.description,
                )
            )
        named = dict(zip(law.names, best.values.tolist(), strict=True))
        total = float(((data.loss - data.loss.mean()) ** 2).sum())
        predicted = law.evaluate(best.values, data.areas)
        r2 = (
            1.0 - float(((predicted - data.loss) ** 2).sum()) / total if total > 0 else float("nan")
        )
        sorted_costs = sorted(best.start_costs)
        agree = (
            len(sorted_costs) < 2
            or sorted_costs[1] - sorted_costs[0] <= 1e-6 * max(sorted_costs[0], 1e-12) + 1e-12
        )
        return SetFit(
            validation_set=validation_set,
            parameter_names=law.names,
            values=best.values.tolist(),
            parameters=parameters,
            derived=law.derived(named),
            jackknife=[] if replica_array is None else replica_array.tolist(),
            noise=_robust_sd(log_residuals[cpt_points]) if cpt_points.any() else 0.0,
            n_points=int(data.loss.size),
            n_pretrain_points=int((data.run_index < 0).sum()),
            r2=r2,
            mean_abs_error=float(np.abs(residuals[cpt_points]).mean()) if cpt_points.any() else 0.0,
            huber_cost=best.cost,
            cv_error=float(np.mean([v[0] for v in cv.values()])) if cv else None,
            runs=run_fits,
            at_bound=bound_names,
            weakly_identified=weak,
            starts_agree=bool(agree),
        )


def _pretrain_record(pilots: PilotSet):
    from cptopt.lawfile import PretrainRecord

    history = pilots.pretrain
    return PretrainRecord(
        known=history.known,
        warmup_steps=history.warmup_steps,
        checkpoints=dict(history.checkpoints),
        final_lr=history.final_lr,
        lr=None if history.lr is None else history.lr.tolist(),
    )


def _coverage(pilots: PilotSet):
    from cptopt.lawfile import Coverage

    peaks = [run.peak_lr for run in pilots.runs]
    steps = [run.steps for run in pilots.runs]
    return Coverage(
        peak_lr_min=min(peaks),
        peak_lr_max=max(peaks),
        replay_ratios=sorted({run.replay_ratio for run in pilots.runs}),
        steps_min=min(steps),
        steps_max=max(steps),
        tokens_per_step=sorted({run.tokens_per_step for run in pilots.runs if run.tokens_per_step}),
        checkpoints=list(dict.fromkeys(run.checkpoint for run in pilots.runs)),
    )


def _inputs(pilots: PilotSet):
    from cptopt.lawfile import InputRecord

    records = [
        InputRecord(name=run.name, source=run.source, sha256=run.sha256) for run in pilots.runs
    ]
    if pilots.pretrain.source:
        records.append(
            InputRecord(
                name="pretrain", source=pilots.pretrain.source, sha256=pilots.pretrain.sha256
            )
        )
    return records
