"""Expert parallelism: each rank of a run holds a block of every layer's
compute experts; tokens travel to the ranks of their experts and back.

Run one Python process per rank (``mpirun -np N python3 script.py``); each
calls the same functions::

    from moe_mlir import ep
    ep.init()                                  # MPI under mpirun, else 1 rank
    f = ep.compile(mlir_text, "forward", arg_names=names)
    y = f(x_local, *weights)                   # full [E, ...] expert stacks
                                               # or this rank's block

``compile`` runs ``moe-expert-parallel`` (the layers' exchange ops) and the
CPU pipeline; the compiled function slices full expert stacks to the rank's
block (``ep.local_experts``). Each rank passes its own tokens; the routing,
the zero-computation experts and the combine stay with the tokens, so in f32
each token's output is bit-equal to a single-process run (for capacity and
expert-choice routing, whose decisions depend on the batch, the batch is the
rank's tokens, as in GShard's groups). See docs/Distributed.md.

Failures of the exchange (a rank that died or hangs past MOE_EP_TIMEOUT_S,
placements that differ between ranks) raise ``EPError`` naming the ranks.
"""

import atexit
import ctypes
import hashlib
import os
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["EPError", "init", "rank", "size", "backend", "finalize", "counters",
           "reset_counters", "local_experts", "allgather", "check_replicated",
           "expert_parallel", "compile", "runtime_library", "COUNTERS", "split_tokens", "gather_rows",
           "mpirun_command", "mpi_flavour",
           "ExpertBlocks"]


class EPError(RuntimeError):
    """An exchange between ranks failed, or the ranks disagree."""


# Indices of moe_ep_counters (include/moe/Runtime/ExpertParallel.h).
COUNTERS = ("dispatch_calls", "dispatch_rows_remote", "dispatch_rows_self",
            "dispatch_row_bytes_remote", "dispatch_row_bytes_self",
            "dispatch_meta_bytes_remote", "combine_rows_remote", "combine_rows_self",
            "combine_row_bytes_remote", "combine_row_bytes_self", "count_bytes_remote",
            "exchange_ns", "plan_ns", "compute_slots")

_lib = None


def runtime_library() -> str:
    """libmoe_ep_runtime.so: $MOE_EP_RUNTIME, else the build tree's lib/."""
    override = os.environ.get("MOE_EP_RUNTIME")
    if override:
        if not os.path.exists(override):
            raise EPError(f"MOE_EP_RUNTIME={override} does not exist")
        return override
    from .compiler import _require_native
    native = _require_native()
    build = os.path.dirname(os.path.dirname(os.path.abspath(native.__file__)))
    path = os.path.join(build, "lib", "libmoe_ep_runtime.so")
    if not os.path.exists(path):
        raise EPError(f"the expert-parallel runtime was not built ({path})")
    return path


def _library():
    global _lib
    if _lib is None:
        # RTLD_GLOBAL: the JIT-compiled code resolves moe_ep_* in the
        # process, and OpenMPI's plugins need libmpi's symbols.
        lib = ctypes.CDLL(runtime_library(), mode=ctypes.RTLD_GLOBAL)
        i32, i64, ptr = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
        lib.moe_ep_init.argtypes = [ctypes.c_char_p]
        lib.moe_ep_init.restype = i32
        for name in ("moe_ep_rank", "moe_ep_size", "moe_ep_finalize", "moe_ep_barrier"):
            getattr(lib, name).restype = i32
            getattr(lib, name).argtypes = []
        lib.moe_ep_backend.restype = ctypes.c_char_p
        lib.moe_ep_last_error.restype = ctypes.c_char_p
        lib.moe_ep_allgather.argtypes = [ptr, i64, ptr]
        lib.moe_ep_allgather.restype = i32
        lib.moe_ep_counters.argtypes = [ctypes.POINTER(i64), i64]
        lib.moe_ep_counters.restype = i32
        lib.moe_ep_reset_counters.argtypes = []
        lib.moe_ep_reset_counters.restype = None
        lib.moe_ep_local_experts.argtypes = [i64, ctypes.POINTER(i64), i64, i32,
                                             ctypes.POINTER(i64), ctypes.POINTER(i64)]
        lib.moe_ep_local_experts.restype = i32
        _lib = lib
    return _lib


def mpi_flavour() -> Optional[str]:
    """"openmpi" or "mpich": the MPI that libmoe_ep_runtime.so was linked
    with (None without MPI), read from the library's dependencies."""
    import subprocess
    try:
        out = subprocess.run(["ldd", runtime_library()], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError, EPError):
        return None
    for line in out.splitlines():
        if "libmpi" not in line:
            continue
        if "libmpich" in line or "mpich" in line.split("=>")[-1]:
            return "mpich"
        return "openmpi"
    return None


def mpirun_command(ranks: int) -> List[str]:
    """The launcher of the MPI the runtime uses, for ``ranks`` processes on
    this machine (more than its cores allowed): ``mpirun.openmpi -np N
    --oversubscribe [--allow-run-as-root]`` or ``mpirun.mpich -np N``
    (Debian installs both flavours' tools under these names; plain
    ``mpirun`` may belong to the other one)."""
    import shutil
    flavour = mpi_flavour()
    if flavour is None:
        raise EPError("libmoe_ep_runtime.so was built without MPI (install libopenmpi-dev "
                      "and reconfigure)")
    tool = shutil.which(f"mpirun.{flavour}") or shutil.which("mpirun")
    if tool is None:
        raise EPError(f"no mpirun for {flavour} (scripts/setup.sh installs openmpi-bin)")
    command = [tool, "-np", str(ranks)]
    if flavour == "openmpi":
        command.append("--oversubscribe")
        if os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command


def last_error() -> str:
    return _library().moe_ep_last_error().decode(errors="replace")


def _check(code: int, what: str):
    if code != 0:
        raise EPError(f"{what}: {last_error() or f'error {code}'}")


def init(backend: Optional[str] = None) -> Tuple[int, int]:
    """Starts the runtime ("auto" (default), "self", "mpi", "nccl"; or
    $MOE_EP_BACKEND) and returns (rank, size). Idempotent."""
    lib = _library()
    _check(lib.moe_ep_init(backend.encode() if backend else None), "ep.init")
    return rank(), size()


def rank() -> int:
    return int(_library().moe_ep_rank())


def size() -> int:
    return int(_library().moe_ep_size())


def backend() -> str:
    return _library().moe_ep_backend().decode()


@atexit.register
def finalize():
    """Ends the runtime (called at exit). After a failed exchange the MPI
    backend aborts the job, so that ranks waiting for this one stop too."""
    if _lib is not None:
        _lib.moe_ep_finalize()


def counters() -> Dict[str, int]:
    """This rank's exchange counters since the start or reset_counters()."""
    values = (ctypes.c_int64 * len(COUNTERS))()
    _library().moe_ep_counters(values, len(COUNTERS))
    return dict(zip(COUNTERS, (int(v) for v in values)))


def reset_counters():
    _library().moe_ep_reset_counters()


def _placement_blocks(placement) -> List[int]:
    if placement in (None, "balanced"):
        return []
    if isinstance(placement, str):
        try:
            return [int(p) for p in placement.split(",")]
        except ValueError:
            raise ValueError(f"placement must be 'balanced' or bounds such as '0,3,8', "
                             f"got {placement!r}") from None
    return [int(p) for p in placement]


def local_experts(num_experts: int, placement="balanced",
                  of_rank: Optional[int] = None) -> Tuple[int, int]:
    """(first, count) of the experts rank ``of_rank`` (default: this rank)
    holds under ``placement`` ("balanced", "0,3,8" or a list of bounds)."""
    init()
    blocks = _placement_blocks(placement)
    array = (ctypes.c_int64 * max(1, len(blocks)))(*blocks)
    first, count = ctypes.c_int64(), ctypes.c_int64()
    _check(_library().moe_ep_local_experts(num_experts, array, len(blocks),
                                           rank() if of_rank is None else of_rank,
                                           ctypes.byref(first), ctypes.byref(count)),
           "ep.local_experts")
    return first.value, count.value


def allgather(data: bytes) -> List[bytes]:
    """Every rank's ``data`` (all of the same length), in rank order."""
    init()
    n = size()
    out = ctypes.create_string_buffer(len(data) * n)
    _check(_library().moe_ep_allgather(data, len(data), out), "ep.allgather")
    raw = out.raw
    return [raw[i * len(data):(i + 1) * len(data)] for i in range(n)]


def exchange_bandwidth(nbytes: int = 32 * 2**20, repeat: int = 3) -> float:
    """The transport's rate between ranks, GB/s: every rank sends ``nbytes``
    to every other rank at once (an all-to-all through the runtime's
    exchange, NumPy buffers, no Python copies); bytes each rank sends to the
    others over the best of ``repeat`` times. NaN on one rank."""
    init()
    n = size()
    if n < 2:
        return float("nan")
    send = np.ones(nbytes, np.uint8)
    recv = np.empty(nbytes * n, np.uint8)
    lib = _library()
    best = float("inf")
    for _ in range(repeat + 1):
        allgather(b"s")
        start = time.perf_counter()
        _check(lib.moe_ep_allgather(send.ctypes.data, nbytes, recv.ctypes.data),
               "ep.exchange_bandwidth")
        best = min(best, time.perf_counter() - start)
    return nbytes * (n - 1) / best / 1e9


def _digest(*parts) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
    return h.digest()


def check_replicated(name: str, value) -> None:
    """Raises EPError, naming the ranks, unless every rank holds the same
    ``value`` (an array: same shape, dtype and bytes; or any str-able)."""
    if isinstance(value, np.ndarray):
        digest = _digest(value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    else:
        digest = _digest(repr(value))
    everyone = allgather(digest)
    differing = [r for r, d in enumerate(everyone) if d != everyone[0]]
    if differing:
        raise EPError(f"rank(s) {', '.join(map(str, differing))} hold a different '{name}' "
                      f"than rank 0 (every rank must load the same model and placement)")


def split_tokens(total: int, of_rank: Optional[int] = None) -> Tuple[int, int]:
    """(first, count) of this rank's share of ``total`` tokens (or
    sequences): contiguous, balanced, rank order."""
    n, r = size(), rank() if of_rank is None else of_rank
    first = total * r // n
    return first, total * (r + 1) // n - first


def gather_rows(array: np.ndarray) -> np.ndarray:
    """Every rank's rows of ``array`` (first dimension; the rest equal on
    every rank), concatenated in rank order, on every rank."""
    array = np.ascontiguousarray(array)
    counts = [int(np.frombuffer(b, np.int64)[0])
              for b in allgather(np.array([array.shape[0]], np.int64).tobytes())]
    width = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    padded = np.zeros((max(counts), width), np.uint8)
    padded[:array.shape[0]] = array.view(np.uint8).reshape(array.shape[0], width)
    parts = allgather(padded.tobytes())
    rows = [np.frombuffer(p, np.uint8).reshape(max(counts), width)[:c]
            for p, c in zip(parts, counts)]
    return np.concatenate(rows).view(array.dtype).reshape((sum(counts),) + array.shape[1:])


# Stand-ins of expert stacks (see ExpertBlocks): id -> (stand-in, block).
_STAND_INS: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}


def stand_in(block: np.ndarray, shape) -> np.ndarray:
    """A full-shaped stand-in for ``block`` (this rank's experts of a stack
    of ``shape``) that takes no memory (stride 0); ``block_of`` finds the
    block again."""
    shape = tuple(shape)
    fake = np.lib.stride_tricks.as_strided(np.zeros(1, block.dtype), shape=shape,
                                           strides=(0,) * len(shape), writeable=False)
    _STAND_INS[id(fake)] = (fake, block)
    return fake


def block_of(array) -> Optional[np.ndarray]:
    """The block behind a stand-in, or None for any other array."""
    entry = _STAND_INS.get(id(array))
    return entry[1] if entry is not None and entry[0] is array else None


def stack_blocks(arrays: Sequence[np.ndarray]) -> Optional[np.ndarray]:
    """The stand-in of np.stack(arrays) when every array is a stand-in (the
    blocks are stacked, the stand-ins never materialised); else None."""
    blocks = [block_of(a) for a in arrays]
    if not arrays or any(b is None for b in blocks):
        return None
    return stand_in(np.stack(blocks), (len(arrays),) + tuple(arrays[0].shape))


class ExpertBlocks:
    """Expert stacks read per rank: ``placeholder(local, experts)`` gives a
    full-shaped stand-in ``[E, ...]`` for the rank's block (``stand_in``),
    so that a model is emitted with the full shapes while the rank holds
    only its block; ``substitute(weights)`` swaps the stand-ins (stacked or
    not) for the blocks in an exported model's weight dict."""

    def placeholder(self, local: np.ndarray, experts: int) -> np.ndarray:
        return stand_in(local, (experts,) + tuple(local.shape[1:]))

    def substitute(self, weights) -> None:
        for name, value in list(weights.items()):
            block = block_of(value)
            if block is not None:
                weights[name] = block


def expert_parallel(mlir_text: str, placement="balanced") -> str:
    """The module with its layers decomposed and made expert-parallel
    (``moe-decompose-layer,moe-expert-parallel``), as text."""
    from .compiler import lower
    blocks = _placement_blocks(placement)
    option = "balanced" if not blocks else ",".join(map(str, blocks))
    return lower(mlir_text, "moe-decompose-layer,canonicalize,"
                            f"moe-expert-parallel{{placement={option}}}")


_EXPERTS_ATTR = re.compile(r"moe\.ep_experts = (\d+)")
_DIM_ATTR = re.compile(r"moe\.ep_expert_dim = (\d+)")


def _expert_arguments(ep_text: str, entry: str) -> Dict[int, Tuple[int, int]]:
    """Entry arguments that hold a rank's block of experts: index -> (E, the
    dimension that indexes the experts)."""
    match = re.search(r"func\.func @" + re.escape(entry) + r"\((.*?)\)\s*(->|\{|attributes)",
                      ep_text, re.S)
    if not match:
        raise EPError(f"no function '{entry}' in the module")
    result = {}
    depth, start = 0, 0
    text = match.group(1)
    pieces = []
    for i, ch in enumerate(text):
        if ch in "<({[":
            depth += 1
        elif ch in ">)}]":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    for index, piece in enumerate(pieces):
        found = _EXPERTS_ATTR.search(piece)
        if found:
            dim = _DIM_ATTR.search(piece)
            result[index] = (int(found.group(1)), int(dim.group(1)) if dim else 0)
    return result


def take_block(value: np.ndarray, experts: int, dim: int, placement) -> np.ndarray:
    """This rank's block of an expert stack (all ``experts`` along ``dim``),
    or the block itself when that is what ``value`` holds."""
    first, count = local_experts(experts, placement)
    value = np.asarray(value)
    if value.shape[dim] == experts and count != experts:
        index = [slice(None)] * value.ndim
        index[dim] = slice(first, first + count)
        return np.ascontiguousarray(value[tuple(index)])
    if value.shape[dim] != count:
        raise EPError(f"an expert stack holds {value.shape[dim]} experts in dimension {dim}; "
                      f"rank {rank()} expects its block of {count} (experts {first}.."
                      f"{first + count - 1} of {experts}) or all {experts}")
    return value


class ExpertParallelFunction:
    """A compiled expert-parallel entry point: ``f(*args)`` with this rank's
    tokens and, for the expert weights, either the full ``[E, ...]`` stacks
    (sliced here to the rank's block) or the block itself."""

    def __init__(self, function, expert_args: Dict[int, int], placement,
                 weights_from: Optional[int] = None, arg_names: Optional[Sequence[str]] = None):
        self.function = function
        self.expert_args = expert_args
        self.placement = placement
        self.weights_from = weights_from
        self.arg_names = list(arg_names) if arg_names else None
        self.checked = weights_from is None
        self.module = getattr(function, "module", None)
        # index -> (the stack last passed, this rank's block of it): full
        # stacks are sliced (and copied, for dimension 1) once, not per call.
        self._blocks: Dict[int, tuple] = {}

    def _name(self, index: int) -> str:
        if self.arg_names and index < len(self.arg_names):
            return self.arg_names[index]
        return f"argument #{index}"

    def check_weights(self, args: Sequence) -> None:
        """At the first call: every rank must hold the same replicated
        weights (arguments from ``weights_from`` on that are not expert
        stacks) and expert blocks of the same inner shape; raises EPError
        naming the rank and the tensor otherwise."""
        for index in range(self.weights_from, len(args)):
            value = np.asarray(args[index])
            if index in self.expert_args:
                dim = self.expert_args[index][1]
                check_replicated(f"{self._name(index)} (shape of one expert)",
                                 (value.dtype.str, value.shape[:dim] + value.shape[dim + 1:]))
            else:
                check_replicated(self._name(index), value)
        self.checked = True

    def local_arguments(self, args: Sequence) -> List:
        out = list(args)
        for index, (experts, dim) in self.expert_args.items():
            value = out[index]
            cached = self._blocks.get(index)
            if cached is not None and cached[0] is value:
                out[index] = cached[1]   # the same stack as last call: no new slice
                continue
            try:
                block = take_block(value, experts, dim, self.placement)
            except EPError as error:
                raise EPError(f"{self._name(index)}: {error}") from None
            self._blocks[index] = (value, block)
            out[index] = block
        return out

    def __call__(self, *args):
        local = self.local_arguments(args)
        if not self.checked:
            self.check_weights(local)
        return self.function(*local)


def compile(mlir_text: str, entry: str, *, placement="balanced", opt_level: int = 3,
            arg_names: Optional[Sequence[str]] = None, backend: Optional[str] = None,
            weights_from: Optional[int] = None):
    """Compiles ``entry`` of a module with moe.layer (or decomposed) layers
    for expert parallelism over the ranks of the run (starting the runtime
    with ``backend`` if needed). Returns an ExpertParallelFunction. With
    ``weights_from``, the arguments from that index on are weights, checked
    across ranks at the first call (ExpertParallelFunction.check_weights)."""
    from . import compiler
    init(backend)
    check_replicated("placement", str(_placement_blocks(placement)))
    ep_text = expert_parallel(mlir_text, placement)
    function = compiler.compile(ep_text, entry, opt_level=opt_level, arg_names=arg_names)
    return ExpertParallelFunction(function, _expert_arguments(ep_text, entry), placement,
                                  weights_from, arg_names)
