"""Test support: waiting on conditions, broker selection, unique names."""
