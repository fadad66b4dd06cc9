"""Inference: what runs when a loaded detector scores an image, below the front door (``api``,
``cli``, ``scan``): the detector (face pipeline, preprocessing, a backend), the artifact index a
cache hit reads (``cached``), heatmaps. Nothing here builds or exports: a cache hit imports no
building code."""
