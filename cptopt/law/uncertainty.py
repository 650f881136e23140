"""Uncertainty of a fitted law: the one home of the jackknife and of interval quantiles.

A fit refits the law once per left-out pilot (leave-one-pilot-out). Those K refits are the
jackknife replicas of every quantity computed from the law: a parameter, a predicted loss,
an objective. Their jackknife variance ``(K - 1) / K * sum_k (x_k - mean)^2`` measures how
much the quantity depends on which pilots were fitted (Efron & Stein 1981).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def jackknife_variance(replicas: np.ndarray) -> np.ndarray:
    """Jackknife variance over the replicas on axis 0 (0 when there are fewer than 2)."""
    replicas = np.asarray(replicas, dtype=float)
    n = replicas.shape[0]
    if n < 2:
        return np.zeros(replicas.shape[1:])
    return (n - 1) / n * ((replicas - replicas.mean(axis=0)) ** 2).sum(axis=0)


def jackknife_covariance(replicas: np.ndarray) -> np.ndarray:
    """Jackknife covariance of replicas ``(K, m)``: shape ``(m, m)``; its diagonal is
    :func:`jackknife_variance`."""
    replicas = np.asarray(replicas, dtype=float)
    n = replicas.shape[0]
    if n < 2:
        return np.zeros((replicas.shape[1], replicas.shape[1]))
    centred = replicas - replicas.mean(axis=0)
    return (n - 1) / n * centred.T @ centred


def between_member_variance(predictions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Between-member variance of an averaged law's prediction on the log scale:
    ``sum_k w_k (log mu_k - log mu)^2`` with ``mu = sum_k w_k mu_k`` the averaged prediction
    (the second term of the Bayesian-model-averaging predictive variance, Hoeting et al.
    1999, eq. 2, about the point the interval is centred on). ``predictions``: the members'
    ``(K, ...)``, positive; ``weights``: ``(K,)``, summing to 1. 0 where they agree."""
    predictions = np.maximum(np.asarray(predictions, dtype=float), 1e-12)
    weights = np.asarray(weights, dtype=float).reshape((-1,) + (1,) * (predictions.ndim - 1))
    centre = np.log((weights * predictions).sum(axis=0))
    return (weights * (np.log(predictions) - centre) ** 2).sum(axis=0)


def z_value(level: float) -> float:
    """Two-sided normal quantile of a central ``level`` interval (1.645 for 0.9)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def robust_sd(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (outlier-proof)."""
    values = np.asarray(values, dtype=float)
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
