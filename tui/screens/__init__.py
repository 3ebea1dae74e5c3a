"""Screens and modals: dashboard, target form, target detail, metrics switches, help, confirm."""
