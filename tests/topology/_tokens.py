"""An OAUTHBEARER token callback for the settings tests, named by its dotted path like a user's would be."""

from __future__ import annotations

import time

CALLS: list[str] = []


def token(oauth_config: str) -> tuple[str, float]:
    """What ``aws_msk_iam_sasl_signer`` wraps: a token and its expiry in epoch seconds."""
    CALLS.append(oauth_config)
    return "header.payload.signature", time.time() + 900
