"""Verification: how far an artifact is from its float reference and from the truth. Gates and
their statistics, stored references and ``verify``, the recorded numerics tables, reports (JSON,
Markdown, JUnit) and the benchmarks' shared code; read by CI's release gate and by
``deepfake-sdk verify | numerics | benchmark``."""
