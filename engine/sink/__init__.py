"""The consuming side: Kafka batches into PostgreSQL exactly once (the sink and its store).

Never imports agent.
"""
