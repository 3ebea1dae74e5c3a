"""Website checks: the checker, its timing, failure reasons, and the worker processes."""
