"""The targets moe_mlir compiles for, and the pass pipeline of each.

One vocabulary serves every entry point that takes a ``target``:

  ``"cpu"``           the host CPU (``moe-cpu-pipeline``)
  ``"gpu"``           NVIDIA GPUs (``moe-gpu-pipeline``): kernels for
                      ``chips`` in a fatbin; the code needs the CUDA driver
                      and libmoe_cuda_runtime.so at run time
  ``"gpu-emulated"``  the GPU kernels (``convert-moe-to-gpu``) run on the
                      host, one thread after the other
                      (``moe-test-gpu-emulation-pipeline``): how the kernels
                      are tested without a GPU

and each entry point supports some of them (``SUPPORT``): the JIT entry
points (``compile``, ``compile_route``, ``compile_layer``, ``load_hf``,
``moe-run``) run code on this host, so ``"cpu"`` and ``"gpu-emulated"``;
ahead-of-time libraries (``build_shared_library``) ``"cpu"`` and ``"gpu"``.
``check_target(target, entry_point)`` validates a target for an entry point
(a ``ValueError`` names the targets, and what the entry point supports), and
``pipeline(target, ...)`` is the pipeline text it maps to.

The textual pipelines are built here only: ``cpu_pipeline``,
``gpu_pipeline`` and ``gpu_emulation_pipeline``.
"""

import enum
from typing import Dict, Optional, Sequence, Tuple, Union

from .toolchain import openmp_runtime

__all__ = ["Target", "TARGETS", "ENTRY_POINTS", "SUPPORT", "DEFAULT_CHIPS", "check_target",
           "supported_targets", "pipeline", "cpu_pipeline", "gpu_pipeline",
           "gpu_emulation_pipeline", "pipeline_needs_openmp", "pipeline_is_gpu",
           "pipeline_has_device_arguments", "pipeline_is_capturable"]


class Target(str, enum.Enum):
    """A compilation target; equal to its spelling (``Target.CPU == "cpu"``)."""
    CPU = "cpu"
    GPU = "gpu"
    GPU_EMULATED = "gpu-emulated"

    def __str__(self) -> str:
        return self.value

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


#: The spellings of the targets, in the order messages list them.
TARGETS: Tuple[str, ...] = tuple(t.value for t in Target)

_DESCRIPTIONS = {
    Target.CPU: "the host CPU (moe-cpu-pipeline)",
    Target.GPU: "NVIDIA GPUs (moe-gpu-pipeline; CUDA driver and libmoe_cuda_runtime.so "
                "at run time)",
    Target.GPU_EMULATED: "the GPU kernels run on the host (moe-test-gpu-emulation-pipeline; "
                         "testing)",
}

#: The entry points that take a target, and the targets each supports.
SUPPORT: Dict[str, Tuple[Target, ...]] = {
    "compile": (Target.CPU, Target.GPU_EMULATED),
    "compile_route": (Target.CPU, Target.GPU_EMULATED),
    "compile_layer": (Target.CPU, Target.GPU_EMULATED),
    "load_hf": (Target.CPU, Target.GPU_EMULATED),
    "load_gguf": (Target.CPU, Target.GPU_EMULATED),
    "moe-run": (Target.CPU, Target.GPU_EMULATED),
    "build_shared_library": (Target.CPU, Target.GPU),
}
ENTRY_POINTS: Tuple[str, ...] = tuple(SUPPORT)


def _quoted(targets: Sequence) -> str:
    return ", ".join(repr(str(t)) for t in targets)


def supported_targets(entry_point: str) -> Tuple[Target, ...]:
    """The targets ``entry_point`` supports."""
    if entry_point not in SUPPORT:
        raise KeyError(f"no entry point {entry_point!r} (entry points: "
                       f"{', '.join(ENTRY_POINTS)})")
    return SUPPORT[entry_point]


def check_target(target: Union[str, Target], entry_point: str) -> Target:
    """The ``Target`` that ``target`` spells, checked for ``entry_point``.

    Raises ``ValueError`` naming the valid targets when ``target`` is not
    one of them, and naming what ``entry_point`` supports (and where the
    target is supported) when it is a target that entry point does not
    support."""
    supported = supported_targets(entry_point)
    try:
        resolved = Target(target)
    except ValueError:
        raise ValueError(f"unknown target {target!r} (valid targets: {_quoted(TARGETS)}; "
                         f"{entry_point} supports {_quoted(supported)})") from None
    if resolved not in supported:
        elsewhere = [name for name, targets in SUPPORT.items() if resolved in targets]
        raise ValueError(f"target {str(resolved)!r} is not supported by {entry_point} "
                         f"(supported: {_quoted(supported)}); {str(resolved)!r} is supported "
                         f"by {', '.join(elsewhere)}")
    return resolved


# ---------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------
#: The NVIDIA targets a GPU library is built for by default (one cubin each,
#: plus the first one's PTX, in one fatbin).
DEFAULT_CHIPS = ("sm_80", "sm_90a")

_CPU_PIPELINE = "moe-cpu-pipeline"
_GPU_PIPELINE = "moe-gpu-pipeline"
_GPU_EMULATION_PIPELINE = "moe-test-gpu-emulation-pipeline"


def _with_options(name: str, options: Sequence[str]) -> str:
    return name + ("{" + " ".join(options) + "}" if options else "")


def cpu_pipeline(instrument_ffn: bool = False, parallel: Optional[bool] = None,
                 target_cpu: Optional[str] = "native") -> str:
    """The textual CPU pipeline with its options. ``parallel`` (default: when
    the OpenMP runtime is installed) runs the expert FFN on OpenMP threads.
    ``target_cpu`` is the CPU LLVM will generate code for (an LLVM CPU name;
    "native", the default, for the host as the JIT does): the kernels'
    schedules are chosen for it (None: the pipeline's default, AVX-512's)."""
    if parallel is None:
        parallel = openmp_runtime() is not None
    if target_cpu is not None and (not isinstance(target_cpu, str) or not target_cpu
                                   or any(c in target_cpu for c in " {}=,")):
        raise ValueError(f"'target_cpu' must be an LLVM CPU name such as 'znver3' or 'native', "
                         f"got {target_cpu!r}")
    options = []
    if target_cpu is not None:
        options.append(f"target-cpu={target_cpu}")
    if instrument_ffn:
        options.append("instrument-ffn=true")
    if parallel:
        options.append("parallel=true")
    return _with_options(_CPU_PIPELINE, options)


def gpu_pipeline(chips=DEFAULT_CHIPS, device_arguments: bool = False,
                 capturable: bool = False, bf16_rows: bool = False) -> str:
    """The textual GPU pipeline (``moe-gpu-pipeline``) for ``chips``;
    ``capturable`` gives every public function the caller's stream and
    workspace (``moe-gpu-capturable``; implies device arguments);
    ``bf16_rows`` runs f32 rows with bf16 weights on tensor cores, rounded
    to bf16 (docs/GPU.md)."""
    chips = tuple(chips)
    if not chips or not all(isinstance(c, str) and c.startswith("sm_") for c in chips):
        raise ValueError(f"chips must be NVIDIA targets such as 'sm_80', got {chips!r}")
    options = ["chips=" + ",".join(chips)]
    if device_arguments or capturable:
        options.append("device-arguments=true")
    if capturable:
        options.append("capturable=true")
    if bf16_rows:
        options.append("bf16-rows=true")
    return _with_options(_GPU_PIPELINE, options)


def gpu_emulation_pipeline() -> str:
    """The textual pipeline of target ``"gpu-emulated"``: the CPU pipeline
    with the moe ops lowered by the GPU kernels, run as host loops."""
    return _GPU_EMULATION_PIPELINE


def pipeline(target: Union[str, Target], *, instrument_ffn: bool = False,
             parallel: Optional[bool] = None, chips=DEFAULT_CHIPS,
             device_arguments: bool = False, target_cpu: Optional[str] = "native",
             capturable: bool = False) -> str:
    """The pipeline text of ``target`` (a target spelling, not checked
    against an entry point: see ``check_target``). ``instrument_ffn`` and
    ``parallel`` are options of ``"cpu"``, ``chips``, ``device_arguments``
    and ``capturable`` of ``"gpu"``; asking for an option that the target
    does not have (``instrument_ffn=True``, ``parallel=True``,
    ``device_arguments=True``) is a ``ValueError``."""
    target = Target(target)
    for name, asked, owner in (("instrument_ffn", instrument_ffn, Target.CPU),
                               ("parallel", parallel, Target.CPU),
                               ("device_arguments", device_arguments, Target.GPU),
                               ("capturable", capturable, Target.GPU)):
        if asked and owner is not target:
            raise ValueError(f"{name!r} is an option of target {str(owner)!r}, not of target "
                             f"{str(target)!r}")
    if target is Target.CPU:
        return cpu_pipeline(instrument_ffn, parallel, target_cpu)
    if target is Target.GPU:
        return gpu_pipeline(chips, device_arguments, capturable)
    return gpu_emulation_pipeline()


def pipeline_needs_openmp(text: str) -> bool:
    """Whether code from the pipeline ``text`` calls the OpenMP runtime."""
    return "parallel=true" in text or "parallel=1" in text


def pipeline_is_gpu(text: str) -> bool:
    """Whether the pipeline ``text`` compiles for NVIDIA GPUs (its code calls
    libmoe_cuda_runtime.so)."""
    return text.startswith(_GPU_PIPELINE)


def pipeline_has_device_arguments(text: str) -> bool:
    """Whether functions compiled by the pipeline ``text`` take device
    pointers and return device buffers (``gpu_pipeline(device_arguments=True)``)."""
    return pipeline_is_gpu(text) and "device-arguments=true" in text


def pipeline_is_capturable(text: str) -> bool:
    """Whether public functions compiled by the pipeline ``text`` take a
    stream and a workspace (``gpu_pipeline(capturable=True)``)."""
    return pipeline_is_gpu(text) and "capturable=true" in text
