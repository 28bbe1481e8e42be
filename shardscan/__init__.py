"""shardscan: a static security scanner for machine-learning model files.

It parses bytes and never loads, imports or executes what it scans.
"""

__version__ = "0.1.0"
