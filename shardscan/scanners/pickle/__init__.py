"""Pickle analysis: a symbolic machine, the judge that applies the policy, and the scanner.

Other scanners use `scan_pickle_range` for the pickles inside their containers.
"""
