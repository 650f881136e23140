"""Report: every renderer. Rich tables and text for people, GitHub annotations, plots.

- :mod:`cptopt.report.fit`: the fit-quality report of a law file;
- :mod:`cptopt.report.prediction`: a prediction;
- :mod:`cptopt.report.search`: a recommendation, a candidate ranking;
- :mod:`cptopt.report.next_pilot`: which pilot to run next (``next-pilot``);
- :mod:`cptopt.report.check`: a check report (text, GitHub workflow commands);
- :mod:`cptopt.report.inspect`: what ``cptopt inspect`` found in a log;
- :mod:`cptopt.report.plot`: pictures of a fit and of a prediction (matplotlib).

Nothing here prints or exits; the CLI does.
"""
