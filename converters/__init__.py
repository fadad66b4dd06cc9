"""Converters: one module per target, each exporting a PyTorch reference into an artifact folder.

The table of targets is :data:`deepfake_sdk.targets.TARGETS`; the interface is ``base.Converter``.
"""
