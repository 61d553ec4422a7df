"""Outcomes: labels joined to served predictions, and what they say about each model version.

- :mod:`services.monitor.outcomes.stats` — pure figures (AUC with DeLong variance, accuracy,
  log loss, Brier, 10-bin ECE, each with a 95% interval) and the candidate-against-stable
  comparisons the label gate judges (paired in shadow, concurrent in canary).

Nothing is imported here, so importing the package loads neither numpy-heavy code nor SciPy.
"""
