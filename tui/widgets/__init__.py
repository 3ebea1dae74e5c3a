"""Dashboard widgets, one per file; each renders a part of a `StatsSnapshot` and diffs updates."""
