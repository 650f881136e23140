"""Annealing memories: how a law credits each LR drop over time (docs/law.md).

A law form multiplies two annealing *amounts* by its linear coefficients: the PT amount by
``C1`` and the CPT amount by ``C2``. The memory decides what those amounts are:

- :class:`S2Annealing` (``"s2"``): the paper's annealing areas ``S2pt`` and ``S2cpt``, the
  m-recursion with factor ``lam`` (computed in :mod:`cptopt.law.areas`): a drop ``d_k`` is
  credited ``d_k (1 - lam^(t-k+1)) / (1 - lam)`` at step t, a memory counted in steps.
- :class:`MultiPowerAnnealing` (``"mpl"``, after Luo et al., arXiv 2503.12811)::

      LD(t) = sum_k d_k * g(zeta, rate * eta_k^-gamma * (S1(t) - S1(k-1))),
      g(zeta, x) = (1 - (1 + x)^-zeta) / zeta        (-> log(1 + x) as zeta -> 0),

  summed over the PT and the CPT drops of :attr:`Areas.history`: a drop's credit grows with
  the LR area trained since it, faster at a lower LR when ``gamma > 0``, and saturates as a
  power law. That tells a WSD decay from a cosine of the same length, which one ``lam``
  cannot.
- :class:`SaturatingMultiPowerAnnealing` (``"mpl1"``): the multi-power memory with its
  saturation power fixed at ``zeta = 1``, ``g = x / (1 + x)``: a drop's credit rises
  linearly in the LR area trained since it and saturates at ``d_k`` (the multi-power law's
  ``beta = 1``). One parameter fewer; offered to pre-training pilots, where the free
  ``zeta`` ran to its lower limit on three pilots (README, pre-training pilots).
"""

from __future__ import annotations

import numpy as np

from cptopt.law.areas import Areas
from cptopt.law.drops import DropHistory
from cptopt.law.parameters import ParamSpec

Derivatives = dict[str, tuple[np.ndarray, np.ndarray]]


class S2Annealing:
    """The paper's memory: the annealing areas S2 (no parameters of its own)."""

    name = "s2"
    #: Whether the law needs :attr:`Areas.history` (the per-drop memory does).
    needs_history = False

    def specs(self) -> list[ParamSpec]:
        return []

    def amounts(self, shape: dict[str, np.ndarray], areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        """``(PT, CPT)`` amounts that ``C1`` and ``C2`` multiply, at parameters ``shape``."""
        return areas.s2_pt, areas.s2_cpt

    def amounts_with_derivatives(
        self, named: dict[str, float], areas: Areas
    ) -> tuple[np.ndarray, np.ndarray, Derivatives]:
        """The amounts at one parameter vector and their derivatives by this memory's own
        parameters (``name -> (d PT, d CPT)``)."""
        return areas.s2_pt, areas.s2_cpt, {}


class MultiPowerAnnealing(S2Annealing):
    """The multi-power memory (see the module docstring): parameters rate, gamma, zeta."""

    name = "mpl"
    needs_history = True

    def specs(self) -> list[ParamSpec]:
        return [
            ParamSpec(
                "rate",
                1e-3,
                1e7,
                1.0,
                1e4,
                log=True,
                description="MPL annealing: credit rate per unit of LR area",
            ),
            ParamSpec(
                "gamma",
                0.0,
                1.5,
                0.0,
                1.0,
                description="MPL annealing: rate ~ LR^-gamma (faster at low LR)",
            ),
            ParamSpec(
                "zeta",
                1e-3,
                3.0,
                0.05,
                1.0,
                description="MPL annealing: saturation power (small: ~log)",
            ),
        ]

    def __getstate__(self) -> dict:
        """Pickled without the kept kernel (arrays as long as the drop history)."""
        return {k: v for k, v in self.__dict__.items() if k != "_last_kernel"}

    @staticmethod
    def _pairs(areas: Areas) -> DropHistory:
        if areas.history is None:
            raise ValueError("the 'mpl' annealing needs the drop history (Areas.history)")
        return areas.history.by_phase

    def _kernel(self, shape: dict[str, np.ndarray], history: DropHistory) -> tuple[np.ndarray, ...]:
        """``x = rate * lr^-gamma * area``, ``log(1 + x)`` and ``g(zeta, x)`` per pair.

        The last single parameter vector's kernel is kept: an optimiser asks for the loss
        and then for its Jacobian at the same point, and on a long history the kernel is
        most of either's cost.
        """
        key = _single(shape["rate"], shape["gamma"], shape["zeta"])
        last = getattr(self, "_last_kernel", None)
        if key is not None and last is not None and last[0] is history and last[1] == key:
            return last[2]
        rate, gamma, zeta = shape["rate"], shape["gamma"], shape["zeta"]
        if key is None:  # a batch of parameter vectors (the search's)
            if np.all(gamma == 0):
                x = rate * history.area
            else:
                x = rate * np.exp(-gamma * history.log_lr) * history.area
            log_term = np.log1p(x)
            return x, log_term, -np.expm1(-zeta * log_term) / zeta
        # One vector: the same operations in the same order (the same bits), in place: on
        # a long history each temporary is megabytes, and fresh ones cost more than the
        # arithmetic (page faults). ``-a / z`` is ``a / -z`` exactly (rounding is symmetric).
        # gamma 0 is common (its bound); it spares an exp over every pair.
        if key[1] == 0.0:
            x = np.multiply(rate, history.area)
        else:
            x = np.multiply(-gamma, history.log_lr)
            np.exp(x, out=x)
            np.multiply(rate, x, out=x)
            np.multiply(x, history.area, out=x)
        log_term = np.log1p(x)
        g = np.multiply(-zeta, log_term)
        np.expm1(g, out=g)
        np.divide(g, -zeta, out=g)
        kernel = (x, log_term, g)
        self._last_kernel = (history, key, kernel)
        return kernel

    def amounts(self, shape: dict[str, np.ndarray], areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        history = self._pairs(areas)
        _, _, g = self._kernel(shape, history)
        return history.phase_sums(history.drop * g)

    def amounts_with_derivatives(
        self, named: dict[str, float], areas: Areas
    ) -> tuple[np.ndarray, np.ndarray, Derivatives]:
        history = self._pairs(areas)
        x, log_term, g = self._kernel(named, history)
        zeta = named["zeta"]
        # In place, each row's operations in the order of the formulas in the comments.
        power = np.multiply(zeta, g)
        np.subtract(1.0, power, out=power)  # (1 + x)^-zeta, from g without another exp
        per_pair = np.empty((4, g.size))
        scratch = np.multiply(history.drop, power)
        np.multiply(history.drop, g, out=per_pair[0])
        # d/d(log rate): drop * power / (1 + x) * x
        np.add(1.0, x, out=per_pair[1])
        np.divide(scratch, per_pair[1], out=scratch)
        np.multiply(scratch, x, out=per_pair[1])
        # d/d gamma: the above times -log LR (a * -b is -(a * b) exactly)
        np.multiply(per_pair[1], history.log_lr, out=per_pair[2])
        np.negative(per_pair[2], out=per_pair[2])
        per_pair[1] /= named["rate"]
        # d/d zeta: drop * ((log_term * power - g) / zeta)
        np.multiply(log_term, power, out=scratch)
        np.subtract(scratch, g, out=scratch)
        np.divide(scratch, zeta, out=scratch)
        np.multiply(history.drop, scratch, out=per_pair[3])
        pt, cpt = history.phase_sums(per_pair)
        names = ("rate", "gamma", "zeta")
        return pt[0], cpt[0], {name: (pt[i + 1], cpt[i + 1]) for i, name in enumerate(names)}


def _single(*values: np.ndarray | float) -> tuple[float, ...] | None:
    """The parameters as plain numbers when each is one number (None for a batch)."""
    single = []
    for value in values:  # the fit's floats and (1,) arrays first: this runs at every call
        if isinstance(value, float):
            single.append(value)
        elif isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
            single.append(float(value.item()))
        elif np.ndim(value) > 1 or np.size(value) != 1:
            return None
        else:
            single.append(float(np.reshape(value, -1)[0]))
    return tuple(single)


class SaturatingMultiPowerAnnealing(MultiPowerAnnealing):
    """The multi-power memory at ``zeta = 1`` (see the module docstring): rate, gamma."""

    name = "mpl1"
    #: The fixed saturation power.
    ZETA = 1.0

    def specs(self) -> list[ParamSpec]:
        return [spec for spec in super().specs() if spec.name != "zeta"]

    def amounts(self, shape: dict[str, np.ndarray], areas: Areas) -> tuple[np.ndarray, np.ndarray]:
        return super().amounts({**shape, "zeta": self.ZETA}, areas)

    def amounts_with_derivatives(
        self, named: dict[str, float], areas: Areas
    ) -> tuple[np.ndarray, np.ndarray, Derivatives]:
        pt, cpt, derivatives = super().amounts_with_derivatives({**named, "zeta": self.ZETA}, areas)
        derivatives.pop("zeta")
        return pt, cpt, derivatives


#: Annealing memories by name (``--annealing``). CPT fits choose among ``s2`` and ``mpl``
#: (:data:`cptopt.fitting.selection.AUTO_ANNEALINGS`); pre-training fits among all three.
ANNEALINGS: dict[str, type[S2Annealing]] = {
    "s2": S2Annealing,
    "mpl": MultiPowerAnnealing,
    "mpl1": SaturatingMultiPowerAnnealing,
}
