"""Fitting: law -> fit. Fit the law to pilot runs and choose its variant by pilot CV.

- :mod:`cptopt.fitting.data`: pool the pilots' loss points with their areas;
- :mod:`cptopt.fitting.optimise`: the multi-start bounded least-squares optimiser;
- :mod:`cptopt.fitting.crossval`: leave-one-pilot-out refits (CV error, jackknife);
- :mod:`cptopt.fitting.jobs`: one variant's fit, in a pool of two workers;
- :mod:`cptopt.fitting.selection`: choosing the variant by CV;
- :mod:`cptopt.fitting.assemble`: the law file from the fit results;
- :mod:`cptopt.fitting.estimator`: :class:`LawFitter`, the scikit-learn-style estimator.
"""

from cptopt.fitting.estimator import DEFAULT_STARTS, LawFitter

__all__ = ["DEFAULT_STARTS", "LawFitter"]
