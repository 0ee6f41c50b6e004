"""``kep ingest``: an HTTP intake that publishes events and answers once the broker stored them.

It lives in the ``kep`` layer: it uses schemas, topology, producers and (for status) consumers, and nothing
below imports it. Needs the ``ingest`` extra (FastAPI, uvicorn). See ``docs/ingest.md``.
"""

from kep.ingest.app import accepted_event_types, create_app
from kep.ingest.settings import IngestSettings
from kep.ingest.signature import SignatureError, sign, verify

__all__ = ["IngestSettings", "SignatureError", "accepted_event_types", "create_app", "sign", "verify"]
