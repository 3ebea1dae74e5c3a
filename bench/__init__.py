"""The metrictui benchmark: the pipeline measured against its own ceilings, in one run.

`python -m bench --scale full` (or `make bench`) measures every part against a baseline taken in
the same run on the same machine (raw Kafka consume and send, raw binary COPY, a naive sink), so
the figures that matter are ratios that hold on a small, noisy machine. See bench/run.py.
"""
