"""Benchmarks of lps_keras layers and models against their standard baselines.

Run everything with `python -m benchmarks.run` (see README, "Performance").
"""
