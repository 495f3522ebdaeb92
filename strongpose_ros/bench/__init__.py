"""Benchmarks, one module each, run by `strongpose bench NAME` or `python bench/NAME.py`."""
