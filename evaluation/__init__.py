"""Evaluation: seqeval scoring, the zero-shot matrix over languages x setups, reports and plots."""
