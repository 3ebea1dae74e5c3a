"""The fleet: agents that share one table of targets through a compacted Kafka topic.

`records` is the topic's format, `table` reads the whole table, `membership` is this agent's
place in its location's consumer group, `share` decides which targets this agent checks, and
`publish` writes edits. Kafka does the coordination; nothing here elects or shards by itself.
"""
