"""Fault tests: the real Kafka and PostgreSQL are stopped, killed or cut off under real agents,
and PostgreSQL judges that every event arrived exactly once (helpers/faults.py).

Fixtures: `servers` (stop/start the real servers, always restored), `agents` (real agent
processes, stopped afterwards), `sink_role` (a least-privilege PostgreSQL role for the sink).
"""

from helpers.faults import agents_fixture, servers_fixture, sink_role_fixture  # noqa: F401 - registers the fixtures
