"""Example consumer group apps, runnable with ``kep run consumers.examples.<module>:app``."""
