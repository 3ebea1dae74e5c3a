"""Everything that talks to Kafka on the producing side: settings, topics, the shipper, the spool.

Never imports agent, sink or db. Nothing is imported here: a sink needs the settings and topics,
not the shipper and spool.
"""
