"""The producing side's sources: host metrics (psutil collectors) and website checks.

May import the engine's base (config, targets, envelope, stats, errors); never kafka, sink or db.
Nothing is imported here: a consumer or a dashboard that only needs the collectors' names
(`engine.agent.collector_names`) must not load psutil and the checks with them.
"""
