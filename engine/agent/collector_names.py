"""The host metric collectors by name, apart from psutil: config validation, the metrics file
and a consumer need the names, not the collectors."""

COLLECTOR_NAMES = ("cpu", "load", "memory", "swap", "disk", "diskio", "net", "processes", "uptime")
