"""The layer rules of the design: the runtime and the core never load the eager front end."""

import subprocess
import sys

import pytest

FRONT_END = ("tracejit._api", "tracejit._tensor", "tracejit._dispatch",
             "tracejit._math", "tracejit._reduce", "tracejit._movement",
             "tracejit._shape_ops", "tracejit._indexing", "tracejit._creation", "tracejit.autograd", "tracejit.nn",
             "tracejit.optim", "tracejit.utils", "tracejit.jit")


def _loaded_after(code):
    probe = code + "\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('tracejit'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("code", [
    "import tracejit.runtime",
    "import tracejit",
    "import tracejit.ops; tracejit.ops.get('tj::add')",
    "import tracejit.ir, tracejit.codegen",
])
def test_core_imports_leave_front_end_unloaded(code):
    loaded = _loaded_after(code)
    leaked = [m for m in loaded if m.startswith(FRONT_END)]
    assert not leaked, f"{code!r} loaded front-end modules {leaked}"


def test_front_end_loads_on_first_attribute():
    loaded = _loaded_after("import tracejit; tracejit.ones(1)")
    assert "tracejit._tensor" in loaded


def test_cupy_is_not_imported_on_cpu():
    out = subprocess.run([sys.executable, "-c", "import tracejit as t, sys; (t.ones(3) + 1).sum(); "
                          "print('cupy' in sys.modules)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute_names_itself():
    import tracejit

    with pytest.raises(AttributeError, match="no attribute 'not_a_function'"):
        tracejit.not_a_function  # noqa: B018
