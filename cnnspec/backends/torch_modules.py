"""The few modules PyTorch lacks for cnnspec's layers.

`cnnspec emit torch` copies the source of the ones a spec uses into the generated file,
so generated code imports only torch and behaves exactly like `Network.to_torch()`.
"""

from torch import nn


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at each position of an (N, C, *spatial) map, as ConvNeXt uses it."""

    def forward(self, x):
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class Reshape(nn.Module):
    """Reshape each sample, keeping the batch dimension."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self):
        return ", ".join(map(str, self.shape))


class ChannelShuffle(nn.Module):
    """Interleave the channels of `groups` groups (ShuffleNet): (N, g*k, ...) -> view, swap, flatten."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c = x.shape[:2]
        x = x.reshape(n, self.groups, c // self.groups, *x.shape[2:])
        return x.transpose(1, 2).reshape(n, c, *x.shape[3:])

    def extra_repr(self):
        return f"groups={self.groups}"


class ChannelsLast(nn.Module):
    """(N, C, *spatial) -> (N, *spatial, C), contiguous (some layers, LRN among them, view their input)."""

    def forward(self, x):
        return x.movedim(1, -1).contiguous()


class ChannelsFirst(nn.Module):
    """(N, *spatial, C) -> (N, C, *spatial), contiguous."""

    def forward(self, x):
        return x.movedim(-1, 1).contiguous()


class Mul(nn.Module):
    """Multiply by a constant."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class Chunk(nn.Module):
    """One of `chunks` equal slices of the channels."""

    def __init__(self, chunks, index):
        super().__init__()
        self.chunks, self.index = chunks, index

    def forward(self, x):
        return x.chunk(self.chunks, dim=1)[self.index]

    def extra_repr(self):
        return f"chunks={self.chunks}, index={self.index}"


def center_crop(tensors):
    """Crop every map to the smallest spatial size among them, keeping the centre.

    The offset along each axis is (size - smallest) // 2, as U-Net crops its skip connections.
    """
    sizes = [min(t.shape[axis] for t in tensors) for axis in range(2, tensors[0].dim())]
    cropped = []
    for t in tensors:
        for axis, size in enumerate(sizes, start=2):
            t = t.narrow(axis, (t.shape[axis] - size) // 2, size)
        cropped.append(t)
    return cropped
