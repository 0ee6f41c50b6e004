"""The shop: an example kep service. Its events (``orders``), handlers (``billing``, ``shipping``) and samples.

Run from ``examples/shop`` (this package's parent), where ``topology.yaml`` and ``schemas/`` are.
"""
