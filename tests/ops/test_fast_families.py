"""With the ``[fast]`` extra installed, every compiled kernel family loads.

The kernel tests skip when their family is not there, and the runtime falls back to the
NumPy kernels (same bits) when a family fails to load; so a family that stops compiling
(say, a kernel calling another with an old signature) would otherwise show only as
skipped tests and lost speed. The one family allowed to be absent is the one that needs
a CPU feature this machine lacks. With ``LITETRAIN_JIT=0`` no family is there: nothing to
check.
"""

from __future__ import annotations

import pytest

from litetrain.ops import compiled_vnni, fast

pytest.importorskip("numba")

# family -> whether this machine can run it
_NEEDS_CPU = {"vnni": compiled_vnni.host_has_vnni}


@pytest.mark.parametrize("family", fast.FAMILIES)
def test_every_family_loads(family):
    loader = fast.kernels(family)
    if loader is None:
        pytest.skip("LITETRAIN_JIT=0 turns the compiled kernels off")
    module = loader.wait()
    if family in _NEEDS_CPU and not _NEEDS_CPU[family]():
        assert module is None and isinstance(loader.error, ImportError)
        return
    assert module is not None, f"the {family!r} kernels failed to load: {loader.error!r}"
