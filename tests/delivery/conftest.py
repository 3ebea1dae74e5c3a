"""How metrictui is built, shipped and run around the code: the wheel (packaging), the systemd
units (deploy), the local stack launcher and the benchmark's smoke run.
"""
