"""Benchmarks: each measures the workbook against a baseline in the same run, as ratios."""
