"""Retries and dead letters: the policy, provenance headers and failure classification."""

from kep.consumers.retry.classify import ErrorClassifier, NonRetryableError, RetryableError
from kep.consumers.retry.headers import (
    PROVENANCE_HEADERS,
    InvalidProvenanceError,
    Provenance,
    strip_provenance,
)
from kep.consumers.retry.policy import (
    DeadLetter,
    DeadLetterReason,
    Decision,
    DecisionKind,
    Drop,
    Retry,
    RetryPolicy,
)

__all__ = [
    "PROVENANCE_HEADERS",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "DecisionKind",
    "Drop",
    "ErrorClassifier",
    "InvalidProvenanceError",
    "NonRetryableError",
    "Provenance",
    "Retry",
    "RetryPolicy",
    "RetryableError",
    "strip_provenance",
]
