"""The CPT law (Wang et al., ICML 2025, Eq. 4 and Eq. 8), one parameter set per validation set.

    L(t) = L0 + A*(S1pt + S1cpt)^(-alpha) - C1*S2pt - C2*S2cpt*u(r)
              + B*(1 - (1 + E*S1cpt)^(-beta)) * v(r)

with the replay multipliers of Eq. 8 (r = replay ratio, r_cpt = 1 - r):

    general:  u = exp(a1*r),      v = 1 - exp(-a2*r_cpt)
    domain:   u = exp(a1*r_cpt),  v = exp(a2*r_cpt) - 1

and ``u = v = 1`` (Eq. 4) when the pilots use a single replay ratio. Other replay forms
(``exp``, ``share``, ``mix``, ``odds``) replace Eq. 8's multipliers; each validation set has
its own.

Two departures from Eq. 4, both options of a form: ``domain_forward="frozen"`` keeps the
domain law's PT power law at its checkpoint value (the CPT area drops out of it), and
``lr_power`` drives the shift term by ``X = eta_ref sum_i (eta_i / eta_ref)^q`` (``q``
fitted) instead of S1cpt. The domain law's shift reads the CPT area with repeated domain
data discounted (``Areas.s1_shift``), which is S1cpt when nothing repeats.

Parametrisation. The shift term is written ``Bbeta * g(beta, E*S1cpt)`` with
``g = (1 - (1 + x)^-beta) / beta``, so ``Bbeta = B*beta``: for small beta only that product
is identified (docs/law.md), and ``g -> log(1 + x)`` smoothly as ``beta -> 0``.
``B = Bbeta / beta`` is reported as a derived quantity.

In black-box mode (PT history unknown, paper Sec. 6) ``S1pt`` is a fitted parameter and
``S2pt`` is folded into ``L0`` (no ``C1``).

The annealing amounts that ``C1`` and ``C2`` multiply come from the law's annealing
memory (:mod:`cptopt.law.annealing`): the paper's S2, or the multi-power memory.

The loss is linear in ``L0, A, C1, C2, Bbeta`` given the other ("shape") parameters; fits use
that to start from the best linear solution for random shapes (variable projection).

:class:`PretrainPartForm` (``"pretrain"``) is the law's pre-training part alone, for pilots that
are pre-training runs: ``L0 + A*S1^(-alpha) - C1*annealing``.
"""

from __future__ import annotations

import numpy as np

from cptopt.law.annealing import ANNEALINGS, S2Annealing
from cptopt.law.areas import Areas
from cptopt.law.parameters import ParamSpec

#: The paper's annealing-memory factor lambda (docs/law.md).
PAPER_LAMBDA = 0.999
#: What CPT steps do to the domain law's PT power law ``A (S1pt + w S1cpt)^-alpha``:
#: "advance" (Eq. 4, ``w = 1``) or "frozen" (``w = 0``: the term keeps its checkpoint value
#: and the domain loss moves through the credit and the shift). cptopt's default is
#: "frozen" (docs/law.md): with "advance", two power laws in S1cpt compete on short pilots
#: and their sum extrapolates too steeply in length.
DOMAIN_FORWARDS = ("advance", "frozen")


def _shift_g(beta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(1 - (1 + x)^-beta) / beta``, stable as ``beta -> 0`` (limit ``log(1 + x)``)."""
    log_term = np.log1p(x)
    return -np.expm1(-beta * log_term) / beta


class LawForm:
    """The law for one validation set (see the module docstring), with Eq. 8 replay terms.

    Parameters
    ----------
    validation_set : "general" or "domain"
    replay_terms : whether the Eq. 8 replay multipliers are included
    checkpoint_known : False for black-box mode (S1pt fitted, no C1)
    annealing : the annealing memory (default: the paper's S2)
    domain_forward : "advance" (Eq. 4) or "frozen" (see :data:`DOMAIN_FORWARDS`)
    lr_power : drive the shift by ``X = sum_i eta_i^q`` (scaled, see :meth:`shift_drive`)
        with a fitted ``q`` instead of the LR area (``q = 1``, Eq. 4)
    """

    #: The form's name in :data:`FORMS` (``--form``).
    name = "paper"

    #: Replay multipliers: "paper" (Eq. 8), "exp", "share" (see the subclasses).
    replay_form = "paper"

    def __init__(
        self,
        validation_set: str,
        replay_terms: bool,
        checkpoint_known: bool,
        annealing: S2Annealing | None = None,
        domain_forward: str = "advance",
        lr_power: bool = False,
    ) -> None:
        if domain_forward not in DOMAIN_FORWARDS:
            raise ValueError(
                f"domain_forward == {domain_forward!r}, must be one of {', '.join(DOMAIN_FORWARDS)}"
            )
        self.validation_set = validation_set
        self.replay_terms = replay_terms
        self.checkpoint_known = checkpoint_known
        self.annealing = annealing or S2Annealing()
        self.domain_forward = domain_forward
        self.lr_power = lr_power
        self.specs = self._specs()
        self.names = [spec.name for spec in self.specs]
        self.linear_names = [spec.name for spec in self.specs if spec.linear]
        self.shape_names = [spec.name for spec in self.specs if not spec.linear]

    def _specs(self) -> list[ParamSpec]:
        specs = [
            ParamSpec("L0", 0.0, 20.0, 0.0, 0.0, linear=True, description="irreducible loss"),
            ParamSpec("A", 0.0, 1e3, 0.0, 0.0, linear=True, description="forward-area scale"),
            ParamSpec("alpha", 0.01, 3.0, 0.1, 1.0, description="forward-area exponent"),
        ]
        if self.checkpoint_known:
            specs.append(
                ParamSpec("C1", 0.0, 1e3, 0.0, 0.0, linear=True, description="PT annealing gain")
            )
        else:
            specs.append(
                ParamSpec(
                    "S1pt", 1e-3, 1e6, 0.1, 100.0, log=True, description="fitted PT forward area"
                )
            )
        specs += [
            ParamSpec("C2", 0.0, 1e3, 0.0, 0.0, linear=True, description="CPT annealing gain"),
            *self.annealing.specs(),
            ParamSpec("Bbeta", -1e3, 1e3, 0.0, 0.0, linear=True, description="shift scale B*beta"),
            ParamSpec("E", 1e-2, 1e6, 1.0, 1e4, log=True, description="shift rate"),
            ParamSpec("beta", 1e-4, 3.0, 0.01, 1.0, description="shift exponent"),
        ]
        if self.lr_power:
            specs.append(ParamSpec("q", 0.2, 3.0, 0.6, 1.4, description="shift drive: sum of LR^q"))
        if self.replay_terms:
            specs += self._replay_specs()
        return specs

    @property
    def needs_history(self) -> bool:
        """Whether the law reads the drop history of :class:`~cptopt.law.areas.Areas`."""
        return self.annealing.needs_history

    def _replay_specs(self) -> list[ParamSpec]:
        # Eq. 8's natural signs: more data of a kind gives more annealing credit for it.
        return [
            ParamSpec("a1", 0.0, 20.0, 0.0, 3.0, description="replay: annealing gain"),
            ParamSpec("a2", 1e-3, 30.0, 0.1, 5.0, description="replay: shift strength"),
        ]

    def replay_multipliers(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)``: multipliers of the CPT annealing term and of the shift term."""
        r_cpt = 1.0 - replay
        if self.validation_set == "general":
            return np.exp(shape["a1"] * replay), -np.expm1(-shape["a2"] * r_cpt)
        return np.exp(shape["a1"] * r_cpt), np.expm1(shape["a2"] * r_cpt)

    def drive_rate(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray | float, np.ndarray | None]:
        """``(k, dk/da2)``: replay's factor on the drive, ``g(beta, E k X)`` (1 but in relax)."""
        return 1.0, None

    def replay_derivatives(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(du/da1, dv/da2)`` of :meth:`replay_multipliers`."""
        r_cpt = 1.0 - replay
        if self.validation_set == "general":
            return replay * np.exp(shape["a1"] * replay), r_cpt * np.exp(-shape["a2"] * r_cpt)
        return r_cpt * np.exp(shape["a1"] * r_cpt), r_cpt * np.exp(shape["a2"] * r_cpt)

    # -- evaluation ---------------------------------------------------------------------

    @property
    def frozen_forward(self) -> bool:
        """Whether CPT steps leave this set's PT power law at its checkpoint value."""
        return self.validation_set == "domain" and self.domain_forward == "frozen"

    @property
    def needs_steps(self) -> bool:
        """Whether the law reads the per-step LRs of :class:`~cptopt.law.areas.Areas`."""
        return self.lr_power

    def forward_weight(self, shape: dict[str, np.ndarray], replay: np.ndarray) -> np.ndarray:
        """Weight of a CPT step in the forward area of this set's power-law term.

        Eq. 4: 1. With ``domain_forward="frozen"`` the domain law's is 0: its PT power law
        describes how training on general data lowered the domain loss; during CPT the
        domain loss falls through the shift and the credit (docs/law.md).
        """
        if self.frozen_forward:
            return np.zeros_like(replay)
        return np.ones_like(replay)

    def shift_drive(
        self, shape: dict[str, np.ndarray], areas: Areas
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(X, dX/dq)``: what drives the shift term ``Bbeta g(beta, E X) v(r)``.

        Eq. 4: the CPT LR area S1cpt (no ``q``: derivative None). The domain law uses the
        area with steps that repeat domain data discounted (``Areas.s1_shift``). With
        ``lr_power``: ``X = eta_ref sum_i (eta_i / eta_ref)^q``, the same weights, which is
        that area at ``q = 1``; ``q < 1`` lets a low LR make more progress per unit of LR
        area (and ``q > 1`` less), so the shift can prefer an LR between the pilots'.
        """
        domain = self.validation_set == "domain"
        if not self.lr_power:
            return (areas.s1_shift if domain else areas.s1_cpt), None
        if areas.steps is None:
            raise ValueError("a shift driven by LR^q needs the per-step LRs (Areas.steps)")
        return areas.steps.power_sums(shape["q"], weighted=domain)

    def basis(self, shape: dict[str, np.ndarray], areas: Areas) -> np.ndarray:
        """Columns multiplying the linear parameters, shape ``(..., n_points, n_linear)``.

        ``shape`` maps each shape-parameter name to an array broadcastable as ``(..., 1)``.
        """
        s1_pt = areas.s1_pt if self.checkpoint_known else shape["S1pt"]
        weight = self.forward_weight(shape, areas.replay_ratio)
        forward = (s1_pt + areas.s1_cpt * weight) ** (-shape["alpha"])
        if self.replay_terms:
            anneal_mult, shift_mult = self.replay_multipliers(shape, areas.replay_ratio)
        else:
            anneal_mult = shift_mult = 1.0
        drive, _ = self.shift_drive(shape, areas)
        if self.replay_terms:
            drive = drive * self.drive_rate(shape, areas.replay_ratio)[0]
        shift = _shift_g(shape["beta"], shape["E"] * drive) * shift_mult
        amount_pt, amount_cpt = self.annealing.amounts(shape, areas)
        anneal_cpt = -amount_cpt * anneal_mult
        columns = [np.ones_like(forward), forward]
        if self.checkpoint_known:
            columns.append(-amount_pt)
        columns += [anneal_cpt, shift]
        return np.stack(np.broadcast_arrays(*columns), axis=-1)

    def split(self, values: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Split ``(..., P)`` vectors into a shape dict (``(..., 1)`` each), linear ``(..., K)``."""
        values = np.asarray(values, dtype=float)
        shape = {name: values[..., self.names.index(name), None] for name in self.shape_names}
        linear = values[..., [self.names.index(name) for name in self.linear_names]]
        return shape, linear

    def evaluate(self, values: np.ndarray, areas: Areas) -> np.ndarray:
        """Predicted loss at the points of ``areas`` for parameters ``(P,)`` or ``(K, P)``."""
        shape, linear = self.split(values)
        return np.einsum("...nk,...k->...n", self.basis(shape, areas), linear)

    def jacobian(self, values: np.ndarray, areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        """Prediction ``(n,)`` and its derivatives ``(n, P)`` for one parameter vector ``(P,)``."""
        named = dict(zip(self.names, np.asarray(values, dtype=float), strict=True))
        s1_pt = areas.s1_pt if self.checkpoint_known else named["S1pt"]
        total_s1 = s1_pt + areas.s1_cpt * self.forward_weight(named, areas.replay_ratio)
        forward = total_s1 ** (-named["alpha"])
        drive, d_drive = self.shift_drive(named, areas)
        rate, d_rate = (1.0, None)
        if self.replay_terms:
            rate, d_rate = self.drive_rate(named, areas.replay_ratio)
            drive = drive * rate
            d_drive = None if d_drive is None else d_drive * rate
        x = named["E"] * drive
        log_term = np.log1p(x)
        beta = named["beta"]
        decay = np.exp(-beta * log_term)  # (1 + E*S1cpt)^-beta
        shift_g = -np.expm1(-beta * log_term) / beta
        if self.replay_terms:
            shape = {"a1": named["a1"], "a2": named["a2"]}
            anneal_mult, shift_mult = self.replay_multipliers(shape, areas.replay_ratio)
            d_anneal, d_shift = self.replay_derivatives(shape, areas.replay_ratio)
        else:
            anneal_mult = shift_mult = np.ones_like(forward)
        amount_pt, amount_cpt, amount_derivatives = self.annealing.amounts_with_derivatives(
            named, areas
        )
        columns = {
            "L0": np.ones_like(forward),
            "A": forward,
            "alpha": -named["A"] * forward * np.log(total_s1),
            "C2": -amount_cpt * anneal_mult,
            "Bbeta": shift_g * shift_mult,
            "E": named["Bbeta"] * shift_mult * drive * decay / (1.0 + x),
            "beta": named["Bbeta"] * shift_mult * (log_term * decay - shift_g) / beta,
        }
        if self.checkpoint_known:
            columns["C1"] = -amount_pt
        else:
            columns["S1pt"] = -named["A"] * named["alpha"] * forward / total_s1
        for name, (d_pt, d_cpt) in amount_derivatives.items():
            column = -named["C2"] * d_cpt * anneal_mult
            if self.checkpoint_known:
                column = column - named["C1"] * d_pt
            columns[name] = column
        if d_drive is not None:
            columns["q"] = named["Bbeta"] * shift_mult * named["E"] * d_drive * decay / (1.0 + x)
        if self.replay_terms:
            columns["a1"] = -named["C2"] * amount_cpt * d_anneal
            columns["a2"] = named["Bbeta"] * shift_g * d_shift
            if d_rate is not None:  # a2 also sets the rate: d g(E X k) / d a2
                slope = named["E"] * drive / rate * decay / (1.0 + x)
                columns["a2"] = columns["a2"] + named["Bbeta"] * shift_mult * slope * d_rate
        if "kappa" in named:
            # d/dkappa of A * (S1pt + S1cpt * (r + kappa * (1 - r)))^-alpha
            columns["kappa"] = (
                -named["A"]
                * named["alpha"]
                * forward
                / total_s1
                * areas.s1_cpt
                * (1.0 - areas.replay_ratio)
            )
        prediction = (
            named["L0"]
            + named["A"] * forward
            + named["C2"] * columns["C2"]
            + named["Bbeta"] * columns["Bbeta"]
        )
        if self.checkpoint_known:
            prediction = prediction + named["C1"] * columns["C1"]
        jac = np.empty((forward.size, len(self.names)))
        for index, name in enumerate(self.names):  # a column may be a scalar: broadcast
            jac[:, index] = columns[name]
        return prediction, jac

    def derived(self, values: dict[str, float]) -> dict[str, float]:
        """Quantities reported next to the fitted ones (``B = Bbeta / beta``)."""
        return {"B": values["Bbeta"] / values["beta"]}


class ExpReplayLaw(LawForm):
    """Eq. 4 with exponential replay multipliers (data-mixing laws, Ye et al. 2024).

        u(r) = exp(a1 * r),   v(r) = exp(-a2 * r)      (both validation sets)

    At r = 0 both are 1, so ``C2`` and ``Bbeta`` keep their Eq. 4 meaning (no replay).
    ``v`` is convex in r, so a little replay can remove much of the forgetting, which the
    Eq. 8 general multiplier ``1 - exp(-a2 * (1 - r))`` cannot express (it is concave in r).
    ``a1`` lets the annealing credit grow or shrink with replay; ``a1 -> -inf`` is not
    needed for the credit to be small: ``C2`` itself can be 0.
    """

    #: The form's name in :data:`FORMS` (``--form``).
    name = "exp"

    replay_form = "exp"

    def _replay_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("a1", -20.0, 20.0, -3.0, 3.0, description="replay: annealing gain rate"),
            ParamSpec("a2", -20.0, 30.0, 0.0, 10.0, description="replay: shift decay rate"),
        ]

    def replay_multipliers(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.exp(shape["a1"] * replay), np.exp(-shape["a2"] * replay)

    def replay_derivatives(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return replay * np.exp(shape["a1"] * replay), -replay * np.exp(-shape["a2"] * replay)


#: The share of a set's own data in the ``share`` form is floored at this much (smoothly):
#: ``(share + SHARE_FLOOR) / (1 + SHARE_FLOOR)``. A bare ``share^a1`` is 0 at share 0 for
#: any ``a1 > 0`` but 1 at ``a1 = 0``: a jump the optimiser cannot see (its gradient is 0
#: there), which let fits on the bundled pilots drop the general credit at r = 0 entirely
#: while the r = 0 pilot shows it. With the floor the credit at share 0 is a continuous
#: ``(0.02 / 1.02)^a1`` of the credit at share 1: 1 at ``a1 = 0``, 2 % at ``a1 = 1``.
SHARE_FLOOR = 0.02


class ShareReplayLaw(LawForm):
    """Eq. 4 whose annealing credit scales with the share of the set's own data.

        u(r) = s^a1,   v(r) = exp(-a2 * r),
        s = (share + SHARE_FLOOR) / (1 + SHARE_FLOOR),   share = r (general) or 1 - r (domain)

    LR decay consolidates what the batches train on: with no replay nothing in a CPT batch
    exercises the general distribution, and the general loss may get almost no annealing
    credit (docs/law.md: distant domains). ``a1 = 0`` gives Eq. 4's constant credit, so
    the data decide; ``C2`` is the credit at share 1.
    """

    #: The form's name in :data:`FORMS` (``--form``).
    name = "share"

    replay_form = "share"

    def _replay_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("a1", 0.0, 5.0, 0.0, 2.0, description="replay: credit ~ own share^a1"),
            ParamSpec("a2", -20.0, 30.0, 0.0, 10.0, description="replay: shift decay rate"),
        ]

    def _share(self, replay: np.ndarray) -> np.ndarray:
        share = replay if self.validation_set == "general" else 1.0 - replay
        return (share + SHARE_FLOOR) / (1.0 + SHARE_FLOOR)

    def replay_multipliers(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._share(replay) ** shape["a1"], np.exp(-shape["a2"] * replay)

    def replay_derivatives(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        share = self._share(replay)
        return share ** shape["a1"] * np.log(share), -replay * np.exp(-shape["a2"] * replay)


class MixAreaLaw(ShareReplayLaw):
    """The ``share`` form whose general forward area counts CPT steps by their data mix.

        general:  A * (S1pt + S1cpt * (r + kappa * (1 - r)))^-alpha,   0 <= kappa <= 1

    Eq. 4 lets every CPT step advance the general loss's power law as a PT step would, but
    only a share r of a CPT batch is general data; the domain share transfers to the
    general loss with weight ``kappa`` (1 gives Eq. 4 back; a distant domain, ~0). The
    domain law is the ``share`` form's: its PT-phase power law already describes transfer.
    """

    #: The form's name in :data:`FORMS` (``--form``).
    name = "mix"

    def _specs(self) -> list[ParamSpec]:
        specs = super()._specs()
        if self.replay_terms and self.validation_set == "general":
            specs.append(
                ParamSpec("kappa", 0.0, 1.0, 0.0, 1.0, description="domain data's general transfer")
            )
        return specs

    def forward_weight(self, shape: dict[str, np.ndarray], replay: np.ndarray) -> np.ndarray:
        if "kappa" not in self.names:
            return super().forward_weight(shape, replay)
        return replay + shape["kappa"] * (1.0 - replay)


class OddsReplayLaw(ShareReplayLaw):
    """The ``share`` credit with a shift that falls hyperbolically in the replay *odds*.

        u(r) = s^a1 (as ``share``),   v(r) = 1 / (1 + a2 r / (1 - r)),   a2 >= 0

    A CPT batch pulls the model toward the domain with weight ``1 - r`` and back toward
    the general data with weight ``r``; the shift still to go scales with the balance of
    the two pulls, ``1 / (1 + a2 odds)``, the shape of the critical-mixture-ratio and
    data-mixing laws (arXiv 2407.17467, 2403.16952). Against ``exp(-a2 r)`` (as many
    parameters) it falls faster near ``r = 0`` and flattens sooner: a little replay removes
    most of the forgetting. At ``r = 1`` (pure replay) the shift is 0.
    """

    #: The form's name in :data:`FORMS` (``--form``).
    name = "odds"

    replay_form = "odds"

    def _replay_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("a1", 0.0, 5.0, 0.0, 2.0, description="replay: credit ~ own share^a1"),
            ParamSpec(
                "a2", 1e-3, 1e4, 0.1, 100.0, log=True, description="replay: shift ~ 1/(1+a2*odds)"
            ),
        ]

    @staticmethod
    def _odds(replay: np.ndarray) -> np.ndarray:
        return replay / np.maximum(1.0 - replay, 1e-9)

    def replay_multipliers(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._share(replay) ** shape["a1"], 1.0 / (1.0 + shape["a2"] * self._odds(replay))

    def replay_derivatives(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        share, odds = self._share(replay), self._odds(replay)
        return share ** shape["a1"] * np.log(share), -odds / (1.0 + shape["a2"] * odds) ** 2


class RelaxReplayLaw(OddsReplayLaw):
    """The ``odds`` level, reached at a rate the replay sets: the shift as a relaxation.

        shift = Bbeta v(r) g(beta, E k(r) X),   k(r) = 1 - r + a2 r,   v(r) = (1 - r) / k(r)

    A batch pushes the loss towards the domain with its domain share ``1 - r`` and pulls it
    back with its replay share ``r`` (weight ``a2``): a relaxation ``dF/dX = (1 - r) - k F``
    moves at rate ``k`` towards the level ``(1 - r) / k``, odds's ``1 / (1 + a2 r/(1-r))``.
    At the start the shift grows with the domain share alone (``Bbeta E (1 - r) X``); replay
    sets how far it goes and how soon it gets there. ``odds`` makes every ratio follow the
    course of ``r = 0``, but on a strong shift forgetting still grows at 1,000 steps at
    ``r = 0`` and is flat after 100 at ``r = 0.1`` (docs/law.md). ``a2 -> 0``: the drive
    is the domain share of ``X``. As many parameters as ``odds``; ``u(r)`` as ``share``.
    """

    #: The form's name in :data:`FORMS` (``--form``).
    name = "relax"

    replay_form = "relax"

    def drive_rate(
        self, shape: dict[str, np.ndarray], replay: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return 1.0 - replay + shape["a2"] * replay, replay + 0.0 * shape["a2"]


class PretrainPartForm(LawForm):
    """The law's pre-training part alone, for pilots that are pre-training runs.

        L(t) = L0 + A * S1(t)^(-alpha) - C1 * annealing(t)

    Eq. 4 with no CPT phase (``S1cpt = S2cpt = 0``): Tissue et al.'s LR-annealing law with
    the S2 memory, the multi-power law (Luo et al.) with the multi-power memory. ``S1``
    counts from step 1, warmup included (the multi-power law's ``S1 + S_W``); the areas
    come as PT areas (``Areas.s1_pt``, ``s2_pt``, PT drops in the history). One validation
    set; no replay terms, no shift, no LR power.
    """

    name = "pretrain"
    replay_form = "none"

    def __init__(self, validation_set: str, *args: object, **kwargs: object) -> None:
        super().__init__(validation_set, *args, **kwargs)  # type: ignore[arg-type]
        if self.replay_terms or self.lr_power or not self.checkpoint_known:
            raise ValueError("the pre-training law has no replay terms, LR power or fitted S1pt")

    def _specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("L0", 0.0, 20.0, 0.0, 0.0, linear=True, description="irreducible loss"),
            ParamSpec("A", 0.0, 1e3, 0.0, 0.0, linear=True, description="forward-area scale"),
            ParamSpec("alpha", 0.01, 3.0, 0.1, 1.0, description="forward-area exponent"),
            ParamSpec("C1", 0.0, 1e4, 0.0, 0.0, linear=True, description="annealing gain"),
            *self.annealing.specs(),
        ]

    def basis(self, shape: dict[str, np.ndarray], areas: Areas) -> np.ndarray:
        forward = areas.s1_pt ** (-shape["alpha"])
        amount, _ = self.annealing.amounts(shape, areas)
        return np.stack(np.broadcast_arrays(np.ones_like(forward), forward, -amount), axis=-1)

    def jacobian(self, values: np.ndarray, areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        named = dict(zip(self.names, np.asarray(values, dtype=float), strict=True))
        forward = areas.s1_pt ** (-named["alpha"])
        amount, _, derivatives = self.annealing.amounts_with_derivatives(named, areas)
        columns = {
            "L0": np.ones_like(forward),
            "A": forward,
            "alpha": -named["A"] * forward * np.log(areas.s1_pt),
            "C1": -amount,
        }
        for name, (d_amount, _) in derivatives.items():
            columns[name] = -named["C1"] * d_amount
        prediction = named["L0"] + named["A"] * forward - named["C1"] * amount
        jac = np.stack([np.broadcast_to(columns[n], forward.shape) for n in self.names], axis=1)
        return prediction, jac

    def derived(self, values: dict[str, float]) -> dict[str, float]:
        """The multi-power law's ``B = C1 / zeta`` (its ``C`` is ``rate``, its ``beta``
        ``zeta``; 1 for ``mpl1``); nothing for the S2 memory."""
        if not self.needs_history:
            return {}
        return {"B (multi-power law)": values["C1"] / values.get("zeta", 1.0)}


#: Law forms of CPT pilots by replay form name (``--form``).
FORMS: dict[str, type[LawForm]] = {
    "paper": LawForm,
    "exp": ExpReplayLaw,
    "share": ShareReplayLaw,
    "mix": MixAreaLaw,
    "odds": OddsReplayLaw,
    "relax": RelaxReplayLaw,
}
#: Every law form :func:`make_law` builds: the CPT forms and the form of pre-training pilots.
LAW_FORMS: dict[str, type[LawForm]] = {**FORMS, PretrainPartForm.name: PretrainPartForm}


def make_law(
    form: str,
    validation_set: str,
    replay_terms: bool,
    checkpoint_known: bool,
    annealing: str = "s2",
    domain_forward: str = "advance",
    lr_power: bool = False,
) -> LawForm:
    """A law form by name, with the S2 (default) or a multi-power (``"mpl"``, ``"mpl1"``)
    memory (one form; :func:`cptopt.law.averaged.build_law` also builds averages)."""
    if form not in LAW_FORMS:
        raise ValueError(f"unknown law form '{form}'; choose from {', '.join(LAW_FORMS)}")
    if annealing not in ANNEALINGS:
        raise ValueError(f"unknown annealing '{annealing}'; choose from {', '.join(ANNEALINGS)}")
    return LAW_FORMS[form](
        validation_set,
        replay_terms,
        checkpoint_known,
        ANNEALINGS[annealing](),
        domain_forward=domain_forward,
        lr_power=lr_power,
    )
