"""Evaluation: the zero-shot matrix over languages x setups, paired comparisons, reports and plots
(scoring itself is `tagging.metrics`)."""
