#!/usr/bin/env python3
"""Exports the real transformers MoE classes (where transformers is installed,
e.g. the GPU machine's image with transformers 5.x) and checks the fixtures
in test/python/fixtures/published/transformers_moe.py against them.

For each block: the fixture is built, its state dict loaded into the real
class built from the same config, both are run on the same [2, 7, H] input
(eager outputs must agree to 1e-6 relative: the fixture behaves like the
published code), then the real module is exported (export-time verification
against its own eager output, B in {1, 2} x S in {1, 7, 33}) and the measured
max differences are printed. Exit status 0: all agree; 1: a mismatch or an
ExportError; 2: transformers is not installed.

    PYTHONPATH=build/python_packages:test/python python3 scripts/export-real-transformers.py
"""
import importlib
import sys

import torch

try:
    import transformers
except ImportError:
    print("transformers is not installed: nothing to check (Debian has none; the GPU "
          "machine's image has 5.x)")
    sys.exit(2)

from fixtures.published import transformers_moe as hf  # noqa: E402
from moe_mlir.export import ExportError, export  # noqa: E402

MAJOR = int(transformers.__version__.split(".")[0])
# (module of the real class, class name, fixture factory)
BLOCKS = {
    4: [("mixtral", "MixtralSparseMoeBlock", hf.make_mixtral_v4),
        ("qwen2_moe", "Qwen2MoeSparseMoeBlock", hf.make_qwen2_moe_v4)],
    5: [("mixtral", "MixtralSparseMoeBlock", hf.make_mixtral_v5),
        ("qwen2_moe", "Qwen2MoeSparseMoeBlock", hf.make_qwen2_moe_v5),
        ("qwen3_moe", "Qwen3MoeSparseMoeBlock", hf.make_qwen3_moe_v5),
        ("olmoe", "OlmoeSparseMoeBlock", hf.make_olmoe_v5)],
}


def _config(fixture_config, model):
    config_class = getattr(importlib.import_module(f"transformers.models.{model}"),
                           type(fixture_config).__name__)
    return config_class(**{k: v for k, v in vars(fixture_config).items()
                           if not k.startswith("_")})


_CONFIGS = {}
_fixture_build = hf._build


def _recording_build(cls, config, state, dtype):
    """The fixtures' ``_build``, remembering each block's config."""
    block = _fixture_build(cls, config, state, dtype)
    _CONFIGS[id(block)] = config
    return block


hf._build = _recording_build


def main() -> int:
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    failures = 0
    for model, class_name, make in BLOCKS.get(MAJOR, []):
        fixture = make()
        module = importlib.import_module(f"transformers.models.{model}.modeling_{model}")
        config = _CONFIGS[id(fixture)]
        real = getattr(module, class_name)(_config(config, model))
        real.load_state_dict(fixture.state_dict())
        real.eval()
        x = torch.randn(2, 7, config.hidden_size,
                        generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ours, theirs = fixture(x.clone()), real(x.clone())
        ours = ours if isinstance(ours, tuple) else (ours,)
        theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        line = f"{class_name:26s}"
        if len(ours) != len(theirs):
            print(f"{line} FIXTURE MISMATCH: {len(ours)} vs {len(theirs)} results")
            failures += 1
            continue
        rel = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
                  for a, b in zip(ours, theirs))
        line += f" fixture vs real: max rel {rel:.2e}"
        if rel > 1e-6:
            failures += 1
            line += " MISMATCH"
        try:
            exported = export(real)
            line += (f"; export {exported.info['results']}: max |diff| "
                     f"{exported.info['max_difference']:.3g}, max rel "
                     f"{exported.info['max_relative_difference']:.3g}")
        except ExportError as error:
            failures += 1
            line += f"; EXPORT FAILED: {error}"
        print(line, flush=True)
    if MAJOR not in BLOCKS:
        print(f"no pinned blocks for transformers {MAJOR}.x")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
