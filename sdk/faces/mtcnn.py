"""MTCNN face detector (P-Net -> R-Net -> O-Net) with 5 landmarks, in plain PyTorch + NumPy.

The network weights are the MIT-licensed ones that ``facenet-pytorch`` 2.6.0 ships
(``facenet_pytorch/data/{pnet,rnet,onet}.pt``, plain state dicts). We only locate those files;
importing facenet_pytorch would import torchvision, which does not load beside our torch.
The cascade follows Zhang et al. 2016 (thresholds 0.6/0.7/0.7, pyramid factor 0.709).
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingDependencyError


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from Caffe, whose flatten order is (W, H, C).
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def facenet_weight_file(net: str) -> Path:
    try:
        dist = importlib.metadata.distribution("facenet-pytorch")
    except importlib.metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(
            "MTCNN weights come from 'facenet-pytorch' 2.6.0, which is not installed. Install it "
            "WITHOUT its dependencies (its torch<2.3 pin clashes): "
            "pip install --no-deps facenet-pytorch==2.6.0"
        ) from exc
    path = Path(dist.locate_file(f"facenet_pytorch/data/{net}.pt"))
    if not path.is_file():
        raise MissingDependencyError(f"facenet-pytorch is installed but {path} is missing")
    return path


def _load(net: nn.Module, name: str) -> nn.Module:
    state = torch.load(facenet_weight_file(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


@dataclass(frozen=True)
class Detection:
    """One face: box ``(x1, y1, x2, y2)`` in pixels, confidence, landmarks ``(5, 2)``.

    Landmark order: left eye, right eye, nose, left mouth corner, right mouth corner (as seen
    in the image).
    """

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; ``mode='min'`` divides by the smaller box (MTCNN's last stage)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(areas[i], areas[rest]) if mode == "min" else areas[i] + areas[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, :2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] = boxes[:, :4] + reg * np.stack([w, h, w, h], axis=1)
    return out


def _crops(image: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Cut square boxes out of a (3, H, W) float image, zero-padding outside it, resize to size."""
    _, height, width = image.shape
    out = []
    for x1, y1, x2, y2 in np.fix(boxes[:, :4]).astype(int):
        patch = torch.zeros(3, y2 - y1 + 1, x2 - x1 + 1)
        sx1, sy1 = max(x1, 0), max(y1, 0)
        sx2, sy2 = min(x2, width - 1), min(y2, height - 1)
        if sx2 >= sx1 and sy2 >= sy1:
            patch[:, sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = image[
                :, sy1 : sy2 + 1, sx1 : sx2 + 1
            ]
        out.append(F.interpolate(patch[None], size=(size, size), mode="area"))
    return (torch.cat(out) - 127.5) * 0.0078125


class MTCNN:
    """Three-stage cascade. ``detect(rgb_uint8)`` returns detections, most confident first."""

    def __init__(self, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        self.pnet, self.rnet, self.onet = _load(PNet(), "pnet"), _load(RNet(), "rnet"), _load(ONet(), "onet")
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor

    @torch.no_grad()
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        image = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)
        boxes = self._stage1(image)
        if len(boxes):
            boxes = self._stage2(image, boxes)
        if not len(boxes):
            return []
        return self._stage3(image, boxes)

    def _scales(self, height: int, width: int) -> list[float]:
        scale = 12.0 / self.min_face_size
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.factor
            side *= self.factor
        return scales

    def _stage1(self, image: torch.Tensor) -> np.ndarray:
        _, height, width = image.shape
        found = []
        for scale in self._scales(height, width):
            size = (int(height * scale + 1), int(width * scale + 1))
            scaled = F.interpolate(image[None], size=size, mode="area")
            reg, prob = self.pnet((scaled - 127.5) * 0.0078125)
            prob, reg = prob[0, 1].numpy(), reg[0].numpy()
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if not len(ys):
                continue
            start = np.stack([xs, ys], axis=1).astype(np.float32)
            b = np.concatenate(
                [
                    np.floor((2 * start + 1) / scale),
                    np.floor((2 * start + 12) / scale),
                    prob[ys, xs][:, None],
                    reg[:, ys, xs].T,
                ],
                axis=1,
            )
            found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), np.float32)
        b = np.concatenate(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        boxes = np.concatenate([b[:, :4], b[:, 4:5]], axis=1)
        # P-Net's regression is relative to box size without the +1 used later.
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        boxes[:, :4] = b[:, :4] + b[:, 5:9] * np.stack([w, h, w, h], axis=1)
        return _square(boxes)

    def _stage2(self, image: torch.Tensor, boxes: np.ndarray) -> np.ndarray:
        reg, prob = self.rnet(_crops(image, boxes, 24))
        score = prob[:, 1].numpy()
        keep = score > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg = reg.numpy()[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[pick], reg[pick]))

    def _stage3(self, image: torch.Tensor, boxes: np.ndarray) -> list[Detection]:
        reg, points, prob = self.onet(_crops(image, boxes, 48))
        score = prob[:, 1].numpy()
        keep = score > self.thresholds[2]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        reg, points = reg.numpy()[keep], points.numpy()[keep]
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        px = w[:, None] * points[:, :5] + boxes[:, 0:1] - 1
        py = h[:, None] * points[:, 5:10] + boxes[:, 1:2] - 1
        landmarks = np.stack([px, py], axis=2)
        boxes = _regress(boxes, reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min")
        pick = pick[np.argsort(-boxes[pick, 4])]
        return [
            Detection(tuple(float(v) for v in boxes[i, :4]), float(boxes[i, 4]), landmarks[i])
            for i in pick
        ]
