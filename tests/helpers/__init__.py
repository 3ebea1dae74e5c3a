"""Helpers the tests share (importable as `helpers.*`: tests/ is on pytest's pythonpath).

stack: the stack handle, one test's `Pipeline` and the console-script command;
sites: the local test servers; kafka_tools: raw topic reads and writes; faults: stop, kill
and restart the real servers and judge conservation; fake_control: a scripted engine for the TUI.
"""
