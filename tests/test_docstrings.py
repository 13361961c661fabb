"""Every public function and class of t2v_helpers says where it is taught (house style, after d2l)."""

import importlib
import inspect
import pkgutil
import re

import pytest

import t2v_helpers

MODULES = [m.name for m in pkgutil.iter_modules(t2v_helpers.__path__) if m.name != "__main__"]


@pytest.mark.parametrize("module", MODULES)
def test_every_public_function_names_its_lesson(module):
    mod = importlib.import_module(f"t2v_helpers.{module}")
    for name, member in vars(mod).items():
        if name.startswith("_") or getattr(member, "__module__", None) != mod.__name__:
            continue
        if inspect.isfunction(member) or inspect.isclass(member):
            first = (member.__doc__ or "").strip().splitlines()[0] if member.__doc__ else ""
            assert re.search(r"(Notebook \d\d|README: [A-Z][\w ]+)\.$", first), f"{module}.{name}: {first!r}"
