"""The routing strategies of the ``moe`` dialect by attribute name, with the
parameters each takes, in order: the one list of the Python package (the C++
side's is the strategy attributes of MoEAttrs.td). ``routing`` validates
configurations with it; ``reference`` checks at import that its strategy
classes agree with it (the reference imports nothing of the compiler, and the
compiled wrappers run without the reference).
"""

from typing import Dict, Tuple

__all__ = ["PARAMETERS", "NAMES"]

PARAMETERS: Dict[str, Tuple[str, ...]] = {
    "top_k": (),
    "top_p": ("p",),
    "adaptive": ("tau",),
    "threshold": ("tau", "k_min"),
    "dynamic_k": (),
    "expert_choice": ("capacity_factor",),
}

NAMES: Tuple[str, ...] = tuple(PARAMETERS)
