"""What a pilot run is worth to a decision: linear-Gaussian preposterior analysis.

The law's uncertainty lives in a small latent space: ``z ~ N(0, C)`` of dimension ``d``
(:mod:`cptopt.design.next_pilot` builds it from the jackknife replicas), and every
quantity the decision needs is linear in ``z`` around the fitted law:

- the objective of decision option ``x``: ``F(x; z) = f[x] + B[x] @ z``;
- the log-losses a pilot run would log: ``y = h + H @ z + e``, with ``e`` Gaussian: an
  independent eval noise ``noise`` per point plus a common offset ``offset`` per curve
  (the law's misfit of a run, which more points on the same curve do not average away).

A pilot's information is ``H' R^-1 H``; it turns ``C`` into ``C' = (C^-1 + H' R^-1 H)^-1``
(the Kalman update) whatever ``y`` turns out to be. Before the pilot runs, the posterior
mean it will give is ``mu ~ N(0, C - C')`` (preposterior), and the option chosen after it is
``argmin_x F(x; mu)``. So, with ``x_hat = argmin f`` the current recommendation:

    expected regret now    R  = E_z[F(x_hat; z) - min_x F(x; z)]
    expected regret after  R' = E_mu[min_x F(x; mu)] - E_z[min_x F(x; z)]

``R - R'`` is the pilot's expected value of sample information (0 <= R' <= R). Both are
Monte Carlo averages over the same standard-normal draws for every pilot (common random
numbers, antithetic pairs), so a pilot that adds nothing has ``R' == R`` and one that pins
``z`` down completely has ``R' == 0``, exactly. ``P(best)`` is the probability that the
recommended option's regret is within ``tolerance`` (the best, up to the noise floor); after
a pilot, of the option chosen then, under the posterior then.

Only numpy; nothing here knows what a law is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Draws of the latent Gaussian (half of them antithetic) for the Monte Carlo averages.
DEFAULT_DRAWS = 2048


def sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def information(sensitivity: np.ndarray, noise: float, offset: float = 0.0) -> np.ndarray:
    """Information ``H' R^-1 H`` of one curve: ``H`` ``(n, d)``, ``R = noise^2 I + offset^2 11'``.

    ``R^-1`` by the Sherman-Morrison formula, so the cost is ``O(n d^2)``. ``noise`` must be
    > 0 (a noiseless curve would pin its directions exactly: use a small value instead).
    """
    sensitivity = np.asarray(sensitivity, dtype=float)
    n = sensitivity.shape[0]
    if n == 0:
        return np.zeros((sensitivity.shape[1],) * 2)
    a, b = noise**2, offset**2
    column_sums = sensitivity.sum(axis=0)
    return (sensitivity.T @ sensitivity - b / (a + n * b) * np.outer(column_sums, column_sums)) / a


def posterior_covariance(prior: np.ndarray, info: np.ndarray) -> np.ndarray:
    """``(C^-1 + I)^-1`` for a prior covariance ``C`` (``(d, d)``, may be singular) and
    information ``I``; batched over leading axes of ``info``.

    Written ``S (1 + S I S)^-1 S`` with ``S = C^(1/2)``, so a singular ``C`` is fine: its
    null directions stay certain.
    """
    root = sqrt_psd(prior)
    inner = np.eye(prior.shape[0]) + root @ info @ root
    return root @ np.linalg.solve(inner, np.broadcast_to(root, inner.shape))


@dataclass(frozen=True)
class Decision:
    """The options a decision chooses between, linear in the latent ``z``.

    ``objective`` ``(m,)``: each option's objective under the fitted law (lower is better);
    ``sensitivity`` ``(m, d)``: its derivative by ``z``; ``tolerance``: a regret this small
    does not matter (the noise floor).
    """

    objective: np.ndarray
    sensitivity: np.ndarray
    tolerance: float

    @property
    def chosen(self) -> int:
        """The option recommended now: the best under the fitted law."""
        return int(np.argmin(self.objective))

    def take(self, index: np.ndarray) -> Decision:
        return Decision(self.objective[index], self.sensitivity[index], self.tolerance)

    def outcomes(self, latent: np.ndarray) -> np.ndarray:
        """Objectives ``(N, m)`` of every option at latent points ``(N, d)``."""
        return self.objective + latent @ self.sensitivity.T


@dataclass(frozen=True)
class Draws:
    """Standard-normal draws shared by every pilot (common random numbers)."""

    xi: np.ndarray  # (N, d): the posterior mean a pilot gives, and the parameters now
    zeta: np.ndarray  # (N, d): the parameters around that posterior mean

    @staticmethod
    def standard(dimension: int, n: int = DEFAULT_DRAWS, seed: int = 0) -> Draws:
        """``n`` draws per array (rounded up to even), each half the other's negative."""
        rng = np.random.default_rng(seed)
        half = max(1, (n + 1) // 2)
        xi, zeta = rng.standard_normal((2, half, dimension))
        return Draws(np.vstack([xi, -xi]), np.vstack([zeta, -zeta]))


def contenders(decision: Decision, prior: np.ndarray, draws: Draws) -> np.ndarray:
    """Options that are the best in at least one prior draw (at full, half and quarter
    scale, so that the shrunken posterior means of a pilot are covered) or within the
    tolerance of the best under the fitted law. The others cannot win and are pruned."""
    root = sqrt_psd(prior)
    keep = {decision.chosen}
    for scale in (1.0, 0.5, 0.25):
        for base in (draws.xi, draws.zeta):
            keep.update(np.unique(decision.outcomes(scale * base @ root).argmin(axis=1)).tolist())
    near = decision.objective <= decision.objective.min() + decision.tolerance
    keep.update(np.flatnonzero(near).tolist())
    return np.array(sorted(keep), dtype=int)


class Outlook:
    """Expected regret and P(best) of the recommendation now, and after a pilot.

    Built once per decision (the contenders, the draws of the latent prior); then
    :meth:`regret_after` and :meth:`p_best_after` score any number of pilots, each by the
    covariance it would leave (``(c, d, d)``). A loop over pilots; each step is a few
    small matrix products over the ``N`` draws and the contenders.
    """

    def __init__(self, decision: Decision, prior: np.ndarray, draws: Draws) -> None:
        self.kept = contenders(decision, prior, draws)
        self.options = decision.take(self.kept)
        self.prior, self.draws = prior, draws
        root = sqrt_psd(prior)
        now = self.options.outcomes(draws.xi @ root)
        best_now = now.min(axis=1)
        chosen, tolerance = self.options.chosen, decision.tolerance
        #: E[regret of the recommendation] now (the antithetic draws make E[F] = f exact).
        self.regret = float(np.mean(now[:, chosen] - best_now))
        self.expected_min = float(best_now.mean())
        around = self.options.outcomes(draws.zeta @ root)
        #: P(the recommendation's regret <= tolerance) now.
        self.p_best = float(np.mean(around[:, chosen] - around.min(axis=1) <= tolerance))

    def _means(self, posterior: np.ndarray) -> np.ndarray:
        """The posterior means a pilot may give, ``(N, d)`` (preposterior ``C - C'``)."""
        return self.draws.xi @ sqrt_psd(self.prior - posterior)

    def regret_after(self, posteriors: np.ndarray) -> np.ndarray:
        """Expected regret ``(c,)`` of the recommendation made after each pilot."""
        out = np.array(
            [self.options.outcomes(self._means(p)).min(axis=1).mean() for p in posteriors]
        )
        return np.clip(out - self.expected_min, 0.0, self.regret)

    def p_best_after(self, posteriors: np.ndarray) -> np.ndarray:
        """P(the option chosen after each pilot is the best up to the tolerance), ``(c,)``."""
        rows = np.arange(self.draws.xi.shape[0])
        out = np.empty(len(posteriors))
        for i, posterior in enumerate(posteriors):
            means = self._means(posterior)
            picked = self.options.outcomes(means).argmin(axis=1)
            outcomes = self.options.outcomes(means + self.draws.zeta @ sqrt_psd(posterior))
            regret = outcomes[rows, picked] - outcomes.min(axis=1)
            out[i] = np.mean(regret <= self.options.tolerance)
        return out
