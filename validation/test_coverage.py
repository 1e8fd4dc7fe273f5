"""Every layer, activation and loss of truesparse.reference has its proof file here.

The reference package lists its components in the registries LAYERS, ACTIVATIONS and
LOSSES (snake_case name -> class); the proof of component ``name`` is
``validation/test_<name>.py``. This test fails if a registered component has no proof file,
if an exported Layer or Loss class is missing from the registries, or if a proof file's
name would collide with a module of ``tests/`` (both directories are rootless test
directories, so pytest imports their modules by bare name).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from proof_helpers import reference

HERE = Path(__file__).resolve().parent
REGISTERED = {**reference.LAYERS, **reference.ACTIVATIONS, **reference.LOSSES}
BASES = (reference.Layer, reference.Loss)


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_every_registered_component_has_a_proof_file(name):
    path = HERE / f"test_{name}.py"
    assert path.is_file(), f"{REGISTERED[name].__name__} ({name}) has no proof: create {path}"


def test_every_exported_layer_and_loss_is_registered():
    registered = set(REGISTERED.values())
    missing = []
    for name in reference.__all__:
        obj = getattr(reference, name)
        is_component = inspect.isclass(obj) and issubclass(obj, BASES) and obj not in BASES
        if is_component and obj not in registered:
            missing.append(name)
    assert not missing, f"exported but not in LAYERS / ACTIVATIONS / LOSSES: {missing}"


def test_registries_list_exported_classes_under_distinct_names():
    exported = [getattr(reference, name) for name in reference.__all__]
    for registry in (reference.LAYERS, reference.ACTIVATIONS, reference.LOSSES):
        for name, cls in registry.items():
            assert any(cls is obj for obj in exported), (
                f"{name}: {cls.__name__} is not in reference.__all__"
            )
    sizes = len(reference.LAYERS) + len(reference.ACTIVATIONS) + len(reference.LOSSES)
    assert len(REGISTERED) == sizes, "a name appears in two registries"


def test_proof_files_do_not_collide_with_tests_modules():
    tests = HERE.parent / "tests"
    ours = {p.name for p in HERE.glob("*.py")} - {"conftest.py"}
    theirs = {p.name for p in tests.glob("*.py")} if tests.is_dir() else set()
    assert not ours & theirs, (
        f"same module names in validation/ and tests/: {sorted(ours & theirs)}"
    )
