"""App bundles: what a browser, Android or iOS app ships, one folder per platform.

``deepfake-sdk export MODEL --for web|android|ios --out DIR`` writes the platform's INT8
artifacts (the same cached, gate-checked builds ``load()`` serves), a checksummed
``manifest.json`` that says how a face becomes the model's input (crop size, alignment template
and margin, JPEG re-encoding, mean/std, threshold, version), that manifest embedded in each model
file whose format has room for it, and the platform's preprocessing code generated from the
manifest (Kotlin, Swift; the web bundle's ES module reads the manifest itself), so an app
cannot drift from the SDK.

``platforms`` holds the one table of platforms (light: the CLI reads it), ``writer`` builds and
verifies bundles (imports torch), ``codegen`` writes the Kotlin and Swift.
"""
from .platforms import PLATFORMS, Platform, get_platform

__all__ = ["PLATFORMS", "Platform", "get_platform"]
