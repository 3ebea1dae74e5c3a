"""The main configuration: declared once, loaded from TOML and environment, and `metrictui init`."""
