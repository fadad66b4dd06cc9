"""Short test clips written with PyAV (H.264 in MP4), so no video fixture ships with the repo."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_clip(path: Path, still: Path, seconds: float = 2.0, fps: int = 10, size: int = 256, drift: int = 2) -> Path:
    """``still`` resized to ``size`` and drifting ``drift`` px a frame to the right: one face moving."""
    import av

    base = np.asarray(Image.open(still).convert("RGB").resize((size + int(seconds * fps) * drift, size)))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.ascontiguousarray(base[:, i * drift : i * drift + size])
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
