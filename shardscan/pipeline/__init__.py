"""Units and engines: list, plan, scan, reduce. Knows nothing about formats."""
