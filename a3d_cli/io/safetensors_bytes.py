"""safetensors files with one byte layout for given tensors and metadata.

Why: safetensors writes its header's `__metadata__` entries in a different order on every save (the Rust side
keeps them in a randomly seeded hash map: safetensors issue #584), so saving the same mesh binding or motion
twice gives different bytes. The run manifest judges a stage's inputs by their bytes
(`a3d_cli.io.manifest.digest_path`), so every stage reading such a file would run again after an earlier
stage re-ran with the same result. Sorting the header's keys makes equal content equal bytes.
"""

from __future__ import annotations

import json

HEADER_SIZE_BYTES = 8
"""The little-endian u64 at the start of a safetensors file: the length of the JSON header after it."""
ALIGNMENT = 8
"""safetensors pads the header with spaces to a multiple of this, so the tensor data after it stays aligned."""


def sorted_header(data: bytes) -> bytes:
    """A safetensors file's bytes with its JSON header's keys sorted at every level; the tensor data is untouched.

    The data offsets in the header count from the end of the header, so they stay valid when its length changes.

    Args:
        data: a whole safetensors file, as `safetensors.numpy.save` or `safetensors.torch.save` return it.

    Returns:
        the same file, byte for byte the same for the same tensors and metadata.
    """
    size = int.from_bytes(data[:HEADER_SIZE_BYTES], "little")
    header = json.loads(data[HEADER_SIZE_BYTES : HEADER_SIZE_BYTES + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % ALIGNMENT)
    return len(text).to_bytes(HEADER_SIZE_BYTES, "little") + text + data[HEADER_SIZE_BYTES + size :]


__all__ = ["sorted_header"]
