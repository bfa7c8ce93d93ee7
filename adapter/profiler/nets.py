"""The profiled architectures in plain torch, with random weights (latency does not depend on
weight values, and no weights can be downloaded here).

Imported only by `adapter.profiler.models` when a pipeline is profiled: torch is the optional
`profile` extra. Shapes follow the published architectures: torchvision's ResNets, YOLOv5 v6
(C3 blocks, SPPF, PANet neck, 3-scale head; n/s/m/l/x by depth and width multipliers) and BERT-
style encoders (DistilBERT/BERT-base/BERT-large sizes).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ConvBnAct(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, p: int | None = None, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act: nn.Module = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


# ---- ResNet (He et al. 2016, torchvision layout) ----
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.down = _downsample(c_in, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.down = _downsample(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


RESNET_LAYERS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet(depth: int, classes: int = 1000) -> nn.Module:
    block, counts = RESNET_LAYERS[depth]
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    c_in = 64
    for stage, count in enumerate(counts):
        width = 64 * 2**stage
        for i in range(count):
            layers.append(block(c_in, width, 2 if i == 0 and stage > 0 else 1))
            c_in = width * block.expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


# ---- YOLOv5 v6 (ultralytics/yolov5 models/yolov5*.yaml) ----
YOLO_MULTIPLIERS = {
    "n": (0.33, 0.25),
    "s": (0.33, 0.50),
    "m": (0.67, 0.75),
    "l": (1.0, 1.0),
    "x": (1.33, 1.25),
}


class C3(nn.Module):
    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True):
        super().__init__()
        hidden = c_out // 2
        self.cv1 = ConvBnAct(c_in, hidden)
        self.cv2 = ConvBnAct(c_in, hidden)
        self.cv3 = ConvBnAct(2 * hidden, c_out)
        self.m = nn.ModuleList(
            nn.Sequential(ConvBnAct(hidden, hidden, 1), ConvBnAct(hidden, hidden, 3)) for _ in range(n)
        )
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        for block in self.m:
            y = y + block(y) if self.shortcut else block(y)
        return self.cv3(torch.cat((y, self.cv2(x)), 1))


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBnAct(c_in, hidden)
        self.cv2 = ConvBnAct(hidden * 4, c_out)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class YoloV5(nn.Module):
    def __init__(self, size: str, classes: int = 80, anchors: int = 3):
        super().__init__()
        depth, width = YOLO_MULTIPLIERS[size]

        def ch(c: int) -> int:
            return math.ceil(c * width / 8) * 8

        def n(count: int) -> int:
            return max(round(count * depth), 1)

        self.stem = nn.Sequential(
            ConvBnAct(3, ch(64), 6, 2, 2), ConvBnAct(ch(64), ch(128), 3, 2), C3(ch(128), ch(128), n(3))
        )
        self.p3 = nn.Sequential(ConvBnAct(ch(128), ch(256), 3, 2), C3(ch(256), ch(256), n(6)))
        self.p4 = nn.Sequential(ConvBnAct(ch(256), ch(512), 3, 2), C3(ch(512), ch(512), n(9)))
        self.p5 = nn.Sequential(
            ConvBnAct(ch(512), ch(1024), 3, 2), C3(ch(1024), ch(1024), n(3)), SPPF(ch(1024), ch(1024))
        )
        self.lat5 = ConvBnAct(ch(1024), ch(512))
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.td4 = C3(ch(1024), ch(512), n(3), shortcut=False)
        self.lat4 = ConvBnAct(ch(512), ch(256))
        self.out3 = C3(ch(512), ch(256), n(3), shortcut=False)
        self.down3 = ConvBnAct(ch(256), ch(256), 3, 2)
        self.out4 = C3(ch(512), ch(512), n(3), shortcut=False)
        self.down4 = ConvBnAct(ch(512), ch(512), 3, 2)
        self.out5 = C3(ch(1024), ch(1024), n(3), shortcut=False)
        per_anchor = anchors * (classes + 5)
        self.detect = nn.ModuleList(nn.Conv2d(ch(c), per_anchor, 1) for c in (256, 512, 1024))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.p3(self.stem(x))
        c4 = self.p4(c3)
        l5 = self.lat5(self.p5(c4))
        l4 = self.lat4(self.td4(torch.cat((self.up(l5), c4), 1)))
        o3 = self.out3(torch.cat((self.up(l4), c3), 1))
        o4 = self.out4(torch.cat((self.down3(o3), l4), 1))
        o5 = self.out5(torch.cat((self.down4(o4), l5), 1))
        return [head(o) for head, o in zip(self.detect, (o3, o4, o5), strict=True)]


# ---- BERT-style encoders (Devlin et al. 2019; DistilBERT, Sanh et al. 2019) ----
class Encoder(nn.Module):
    def __init__(
        self, layers: int, d_model: int, heads: int, outputs: int, per_token: bool, vocab: int = 30522
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(512, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, 4 * d_model, dropout=0.0, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, outputs)
        self.per_token = per_token

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.encoder(self.tokens(ids) + self.positions(positions))
        # Span extraction (QA) scores every token; classification reads the first ([CLS]) one.
        return self.head(h if self.per_token else h[:, 0])


ENCODER_SHAPES = {"distilbert": (6, 768, 12), "bert-base": (12, 768, 12), "bert-large": (24, 1024, 16)}


def encoder(shape: str, outputs: int, per_token: bool) -> nn.Module:
    layers, d_model, heads = ENCODER_SHAPES[shape]
    return Encoder(layers, d_model, heads, outputs, per_token)
