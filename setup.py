"""Packages found by discovery: the design maps four top-level folders into one import package
(``sdk`` -> ``deepfake_sdk``, ``converters`` -> ``deepfake_sdk.converters``, ...), which
pyproject.toml's ``packages.find`` cannot express, so every package under those folders is found
here. A new family folder (or any subpackage) is packaged with no edit; its package data
(weights, cards, numerics, web modules) is matched by the globs in pyproject.toml."""
from setuptools import find_packages, setup

ROOTS = {"deepfake_sdk": "sdk", "deepfake_sdk.converters": "converters",
         "deepfake_sdk.quantization": "quantization", "deepfake_sdk.runtimes": "runtimes"}


def discovered() -> list[str]:
    found = []
    for package, folder in ROOTS.items():
        found += [package] + [f"{package}.{sub}" for sub in find_packages(folder)
                              if not any(f"{package}.{sub}" == other for other in ROOTS)]
    return sorted(set(found))


setup(packages=discovered(), package_dir=ROOTS)
