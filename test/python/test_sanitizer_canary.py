"""The sanitizer run can fail: an out-of-bounds read in generated code is
reported. Runs only under scripts/sanitize.sh (MOE_MLIR_SANITIZE=1 with the
ASan runtime preloaded); it proves that the instrumentation of compiled
functions is active, so a clean sanitizer run means something."""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("MOE_MLIR_SANITIZE"),
                                reason="only meaningful under scripts/sanitize.sh")


def test_out_of_bounds_read_is_reported():
    script = textwrap.dedent("""
        import numpy as np, moe_mlir
        f = moe_mlir.compile('''
        func.func @read(%t: tensor<?xf32>, %i: index) -> f32 {
          %v = tensor.extract %t[%i] : tensor<?xf32>
          return %v : f32
        }''', "read")
        data = np.ones(1000, np.float32)
        print(f(data, 1003))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert run.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in run.stderr, run.stderr[-2000:]
