"""Hostile input: malformed config, misbehaving websites and garbage on the topics; the
pipeline reports it and keeps going.

Fixture (from helpers/faults.py): `agents`.
"""

from helpers.faults import agents_fixture  # noqa: F401 - registers the fixtures
