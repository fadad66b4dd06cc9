"""Exceptions with messages a user can act on.

Every failure that reaches a user is one of these, raised where the problem is understood
(bad image, missing runtime, tampered artifact), never a traceback from inside a runtime.
All subclass :class:`DeepfakeSDKError` so callers can catch the family at once.
"""
from __future__ import annotations


class DeepfakeSDKError(Exception):
    """Base class of every error this SDK raises on purpose."""


class InvalidImageError(DeepfakeSDKError, ValueError):
    """The input is not a decodable image, or is too small / oddly shaped to hold a face."""


class UnknownModelError(DeepfakeSDKError, KeyError):
    """A model name that is not in the zoo."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(DeepfakeSDKError, ImportError):
    """An optional package (a runtime, a weights package) is not installed."""


class ArtifactError(DeepfakeSDKError):
    """An artifact is missing, corrupt, altered after export, or of an incompatible version."""


class ParityGateError(DeepfakeSDKError):
    """An INT8 build missed its parity gate against the float reference and ``strict`` refuses it."""


class NonFiniteOutputError(DeepfakeSDKError, ArithmeticError):
    """A runtime returned NaN or Inf instead of a score (a broken artifact, kernel or input)."""


class ParityWarning(UserWarning):
    """An artifact that missed its build gate is being served; the message carries the numbers."""


class InvalidReferenceError(DeepfakeSDKError):
    """A parity reference folder that is missing, altered, or does not fit the data or artifact."""


class UsageError(DeepfakeSDKError, ValueError):
    """An argument the SDK cannot act on: an unknown target or precision, a precision a target
    does not write, a recipe for another precision."""
