"""The pipeline end to end against the real stack, through the real `metrictui` commands:
agent -> Kafka -> sink -> PostgreSQL, the CLI, init, logs, report, retention, the HTTP status
server and the headless control socket. Fixtures `stack` and `pipeline` are in tests/conftest.py.
"""
