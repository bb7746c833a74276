"""Decode Draco streams in a child process whose address space is capped from the sizes the file declares.

Why: a3d bounds every glTF accessor by its declared count before decoding it (`a3d_cli.mesh.gltf_accessors`),
but a Draco stream says how much it holds only once DracoPy has decoded it: a small crafted stream can make
the decoder allocate far more than its accessors declare. Decoding in a child process with
`RLIMIT_AS` set (after the child has imported numpy and DracoPy) to the declared size plus a margin turns
such a stream into one clear error instead of an exhausted machine; a crash of the decoder ends the child,
not a3d. The child is this file run by the same Python with `-I` (its start-up ignores `PYTHON*` variables and
user site-packages and adds neither the script's folder nor the current folder to its path); it then
takes the parent's `sys.path` over stdin, so it imports from the same places the parent does (the current
folder too, where the parent's path holds it). Bytes go in on stdin, arrays come back as `.npy` records on
stdout (no pickles either way; the parent reads them as read-only views of the child's output, not copies),
after a marker the child writes once its
imports are done; anything else that writes to the child's stdout (a native library's message) is sent to
its stderr, so the records stay intact. Where no child can be started (a frozen or embedded interpreter
whose `sys.executable` is not a Python), or the child's output is not what it writes, the asset is refused
with one error saying so.

Examples:
    >>> [(attributes, faces)] = decode_streams([blob], declared_values=30_000, name="model.glb")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BYTES_PER_VALUE = 64  # address space allowed per declared value: float64 output, Draco's buffers, copies
BASE_BYTES = 256 << 20  # plus this much for the decoder itself, whatever the stream
TIMEOUT_S = 300.0  # a stream that keeps the decoder busy longer is refused
_EXIT_DECODE, _EXIT_MEMORY = 3, 4
MARKER = b"a3d-draco-child 1\n"  # first bytes of the child's stdout: it is this file, run by a Python, imports done
_NO_CHILD_HINT = (
    "Run a3d from a regular Python installation (pip install a3d), or export the asset without Draco compression."
)


def address_budget(declared_values: int) -> int:
    """Bytes of address space the child may add to what it holds after its imports, for this many declared
    components (attributes' count × width, plus indices)."""
    return BASE_BYTES + BYTES_PER_VALUE * max(int(declared_values), 0)


def decode_streams(blobs: list[bytes], declared_values: int, name: str) -> list[tuple[dict[int, object], object]]:
    """Decode Draco streams in one capped child process.

    Args:
        blobs: the streams (bufferView bytes of `KHR_draco_mesh_compression` primitives).
        declared_values: the components their accessors declare, all streams together (sizes the cap).
        name: the asset's file name, for messages.

    Returns:
        Per stream: its attributes' data by Draco unique id, and its faces ([T, 3] array, or None for a
        point cloud).

    Raises:
        InputError: a stream does not decode, needs more memory than the cap, crashes or stalls the decoder.
    """

    from a3d_cli.errors import InputError

    budget = address_budget(declared_values)
    head = json.dumps({"path": [p for p in sys.path if p], "budget": budget}).encode()
    payload = struct.pack("<I", len(head)) + head + b"".join(struct.pack("<Q", len(b)) + bytes(b) for b in blobs)
    hint = "The file is damaged or was written by a faulty exporter; export it again."
    command = child_command()
    if command is None:
        raise InputError(
            f"{name} has Draco-compressed geometry, which this a3d cannot decode: it runs in a frozen or embedded "
            "Python that cannot start the decoder's process.",
            hint=_NO_CHILD_HINT,
        )
    try:
        done = subprocess.run(command, input=payload, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(
            f"{name} has Draco-compressed geometry that the decoder did not finish in {TIMEOUT_S:.0f} s.", hint=hint
        ) from None
    except OSError as exc:  # sys.executable missing or not executable
        raise InputError(
            f"{name} has Draco-compressed geometry, but the decoder's process cannot be started ({exc}).",
            hint=_NO_CHILD_HINT,
        ) from exc
    reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    if not done.stdout.startswith(MARKER):  # not this file run by a Python, or its imports failed
        raise InputError(
            f"{name} has Draco-compressed geometry, but the decoder's process did not start ({reason[0][:200]}).",
            hint=_NO_CHILD_HINT,
        )
    if done.returncode == _EXIT_DECODE:
        raise InputError(f"{name} has Draco-compressed geometry that does not decode ({reason[0][:200]}).", hint=hint)
    if done.returncode != 0:  # out of the address space allowed, or the decoder crashed (a signal)
        raise InputError(
            f"{name} has Draco-compressed geometry whose decoding needs more than the {budget >> 20:,} MiB its "
            f"declared sizes allow, or crashed the decoder ({reason[0][:200]}).",
            hint=hint,
        )
    out, stream = [], io.BytesIO(done.stdout)
    stream.seek(len(MARKER))
    try:
        for _ in blobs:
            ids = _view_record(stream, done.stdout)
            attributes = {int(uid): _view_record(stream, done.stdout) for uid in ids}
            faces = _view_record(stream, done.stdout)
            has_faces = bool(_view_record(stream, done.stdout))
            out.append((attributes, faces if has_faces else None))
        if stream.read(1):
            raise ValueError("data after the last record")
    except (ValueError, TypeError, EOFError, OSError) as exc:  # not the records the child writes
        raise InputError(
            f"{name} has Draco-compressed geometry whose decoder answered with malformed output ({exc}).", hint=hint
        ) from exc
    return out


def _view_record(stream: io.BytesIO, data: bytes) -> np.ndarray:
    """The next `.npy` record of `stream` (a reader over `data`) as a read-only view of `data`: the child's
    output is held once, not once more as decoded copies. Copy where a writable array is needed.

    Raises:
        ValueError: a malformed header, an object dtype (it would need a pickle) or a record cut short.
    """
    import numpy as np
    from numpy.lib import format as npy

    version = npy.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(stream)
    else:
        raise ValueError(f"unexpected .npy version {version}")
    if dtype.hasobject:
        raise ValueError("an object array (it would need a pickle)")
    count = int(np.prod(shape, dtype=np.int64))
    start = stream.tell()
    if start + count * dtype.itemsize > len(data):
        raise ValueError("a record cut short")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    stream.seek(start + count * dtype.itemsize)
    return values.reshape(shape[::-1]).T if fortran else values.reshape(shape)


def child_command() -> list[str] | None:
    """The command that runs the child: this file, by this Python, isolated; None where this process cannot
    start one (a frozen application, or no interpreter path, or this module not stored as a file)."""
    script = Path(__file__)
    if getattr(sys, "frozen", False) or not sys.executable or not script.is_file():
        return None
    return [sys.executable, "-I", str(script.resolve())]


def _child() -> int:
    """The child's side: read the request on stdin, cap the address space, decode, write `.npy` records."""
    data = sys.stdin.buffer.read()
    (n,) = struct.unpack_from("<I", data, 0)
    request = json.loads(data[4 : 4 + n])
    sys.path[:] = request["path"]
    import os

    records = os.fdopen(os.dup(1), "wb")  # the records' own channel
    os.dup2(2, 1)  # anything else written to stdout (a native library's message) goes to stderr
    import DracoPy
    import numpy as np

    records.write(MARKER)
    records.flush()  # the parent knows the child started even if the decoder is killed later
    blobs, offset = [], 4 + n
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        blobs.append(data[offset + 8 : offset + 8 + length])
        offset += 8 + length
    del data
    _cap_address_space(int(request["budget"]))
    out = _Pipe(records)
    try:
        for blob in blobs:
            decoded = DracoPy.decode(blob)
            attributes = list(decoded.attributes)
            np.save(out, np.array([int(a["unique_id"]) for a in attributes], dtype=np.int64))
            for a in attributes:
                np.save(out, np.asarray(a["data"]))
            faces = getattr(decoded, "faces", None)
            np.save(out, np.zeros((0, 3), np.uint32) if faces is None else np.asarray(faces))
            np.save(out, np.array(faces is not None))
    except MemoryError:
        print("out of memory", file=sys.stderr)
        return _EXIT_MEMORY
    except Exception as exc:  # DracoPy raises its own error types for damaged streams
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return _EXIT_DECODE
    records.flush()
    return 0


class _Pipe:
    """The records' pipe as a plain writable object: numpy writes `.npy` data to it in chunks (to a real file
    object it would use `tofile`, which needs a seekable file, not a pipe)."""

    def __init__(self, file: io.BufferedWriter) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        return self.file.write(data)


def _cap_address_space(budget: int) -> None:
    """Limit the address space to what the process maps now plus `budget` bytes (Linux; elsewhere the child
    still keeps a decoder crash away from a3d)."""
    try:
        import os
        import resource

        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = mapped + budget
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(_child())
