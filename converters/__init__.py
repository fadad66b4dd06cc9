"""Converters: one module per target, each exporting a PyTorch reference into an artifact folder.

The table of targets is :data:`deepfake_sdk.targets.TARGETS`; each module declares what it offers
as ``CONVERTER`` (:class:`base.Converter`), found by :func:`converter_for`.
"""
from __future__ import annotations

import importlib

from ..errors import MissingDependencyError
from ..targets import get_target


def converter_for(target: str):
    """``target``'s :class:`~deepfake_sdk.converters.base.Converter`, or a
    :class:`MissingDependencyError` naming the extra that installs its toolchain."""
    row = get_target(target)
    try:
        return importlib.import_module(f"deepfake_sdk.converters.{row.converter}").CONVERTER
    except ImportError as exc:
        raise MissingDependencyError(
            f"exporting to {row.name!r} needs {exc.name or 'a package that is missing'}: "
            f"pip install 'deepfake-sdk[{row.extra}]'") from exc
