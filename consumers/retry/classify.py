"""Which failures are worth retrying.

A *fatal* failure goes straight to the dead-letter topic: retrying cannot help. Order of the rules:

1. A :class:`consumers.errors.HandlerError` is classified by its cause (the handler's own exception).
2. :class:`RetryableError` (and subclasses) is never fatal: the app says so explicitly.
3. :class:`NonRetryableError` (and subclasses) is always fatal.
4. Fatal by default: :class:`schemas.errors.DecodeError` (corrupt bytes, unknown schema), pydantic's
   ``ValidationError`` (an event that does not fit its model) and :class:`consumers.errors.RecordError` (a
   record the runtime cannot read), plus every class the app declares fatal.
5. When the app lists ``retryable_only``, every exception not matching it is fatal.
6. Anything else is retryable.

Classes may be given as classes or as dotted names (``"myapp.errors.PaymentDeclined"``, ``"ValueError"``);
both match subclasses. Dotted names are compared with the qualified names along the exception's MRO, so
nothing is imported to classify.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from pydantic import ValidationError

from kep.consumers.errors import ConfigError, HandlerError, RecordError
from kep.schemas.errors import DecodeError

ExceptionRef = type[BaseException] | str

DEFAULT_FATAL: Final[tuple[type[BaseException], ...]] = (DecodeError, ValidationError, RecordError)


class RetryableError(Exception):
    """Raise (or subclass) in a handler to mark a failure as transient: retried, whatever the rules say."""


class NonRetryableError(Exception):
    """Raise (or subclass) in a handler to mark a failure as permanent: it is dead-lettered at once."""


class ErrorClassifier:
    """Decides whether an exception is fatal (dead-letter now) or retryable.

    >>> ErrorClassifier(fatal=("builtins.KeyError",)).is_fatal(KeyError("sku"))
    True
    """

    def __init__(
        self,
        fatal: Iterable[ExceptionRef] = (),
        retryable_only: Iterable[ExceptionRef] = (),
        *,
        include_defaults: bool = True,
    ) -> None:
        declared = tuple(fatal)
        self.fatal: tuple[ExceptionRef, ...] = (*DEFAULT_FATAL, *declared) if include_defaults else declared
        self.retryable_only: tuple[ExceptionRef, ...] = tuple(retryable_only)
        _check_refs(self.fatal, "fatal")
        _check_refs(self.retryable_only, "retryable_only")

    def is_fatal(self, exc: BaseException) -> bool:
        """True when retrying ``exc`` cannot help (see the module docstring for the rules)."""
        exc = _unwrap(exc)
        if isinstance(exc, RetryableError):
            return False
        if isinstance(exc, NonRetryableError) or matches(exc, self.fatal):
            return True
        if self.retryable_only:
            return not matches(exc, self.retryable_only)
        return False

    def __repr__(self) -> str:
        names = ", ".join(_ref_name(ref) for ref in self.fatal)
        only = ", ".join(_ref_name(ref) for ref in self.retryable_only)
        return f"ErrorClassifier(fatal=({names}), retryable_only=({only}))"


def matches(exc: BaseException, refs: Iterable[ExceptionRef]) -> bool:
    """True when ``exc`` is an instance of one of ``refs`` (classes or dotted names, subclasses included)."""
    mro_names: set[str] | None = None
    for ref in refs:
        if isinstance(ref, str):
            if mro_names is None:
                mro_names = _mro_names(type(exc))
            if ref in mro_names:
                return True
        elif isinstance(exc, ref):
            return True
    return False


def _unwrap(exc: BaseException) -> BaseException:
    seen = 0
    while isinstance(exc, HandlerError) and exc.__cause__ is not None and seen < 10:
        exc = exc.__cause__
        seen += 1
    return exc


def _mro_names(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        qualified = f"{klass.__module__}.{klass.__qualname__}"
        names.add(qualified)
        if klass.__module__ == "builtins":
            names.add(klass.__qualname__)
    return names


def _ref_name(ref: ExceptionRef) -> str:
    return ref if isinstance(ref, str) else f"{ref.__module__}.{ref.__qualname__}"


def _check_refs(refs: tuple[ExceptionRef, ...], what: str) -> None:
    for ref in refs:
        if isinstance(ref, str):
            if not ref or any(not part.isidentifier() for part in ref.split(".")):
                raise ConfigError(f"{what}: {ref!r} is not a dotted exception class name")
        elif not (isinstance(ref, type) and issubclass(ref, BaseException)):
            raise ConfigError(f"{what}: {ref!r} is not an exception class")
