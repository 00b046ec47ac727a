"""The safetensors format, written without the safetensors package (a test-only dependency): an 8-byte
little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then the bytes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (on the CPU, each its own storage: the format has no shared tensors) to a new file."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    names = sorted(tensors)
    for name in names:
        tensor = tensors[name]
        if tensor.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {tensor.dtype} is not written")
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _DTYPES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as the format's readers expect
    with open(path, "xb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in names:
            tensor = tensors[name].detach().to("cpu").contiguous()
            # Bytes as they lie in memory (little-endian here, as the format says); 16-bit floats through int16,
            # which numpy can hold.
            if tensor.element_size() == 2:
                tensor = tensor.view(torch.int16)
            f.write(memoryview(tensor.numpy()).cast("B"))
