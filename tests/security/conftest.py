"""Security tests: TLS and SASL to Kafka, least-privilege PostgreSQL roles, file permissions,
secrets kept out of logs and screens, and hostile bytes carried verbatim.

Fixtures (from helpers/faults.py): `servers`, `agents` and `sink_role`.
"""

from helpers.faults import agents_fixture, servers_fixture, sink_role_fixture  # noqa: F401 - registers the fixtures
