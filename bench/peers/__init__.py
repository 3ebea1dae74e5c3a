"""`make bench-peers`: metrictui's sink and checker against Telegraf and Kafka Connect.

See bench/peers/run.py for what is run and bench/results/README.md for what each figure means.
"""
