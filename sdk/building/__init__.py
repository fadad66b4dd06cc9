"""Building: ``export``, the verb that turns a PyTorch reference into a checked artifact
(converters, quantization, mixed precision under the build gate), and ``build.ensure_artifact``,
the cached build behind a zoo name on a target. Run on a cache miss, by ``deepfake-sdk export``
and by app bundles."""
