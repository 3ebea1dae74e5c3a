"""The producing side's sources: host metrics (psutil collectors) and website checks.

May import the engine's base (config, targets, envelope, stats, errors); never kafka, sink or db.
"""
