"""Runtimes: one module per inference engine behind ``base.Runtime``."""
