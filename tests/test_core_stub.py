"""The type stub ``truesparse/_core.pyi`` describes the compiled module exactly.

Every public name of ``truesparse._core`` is in the stub and every name of the stub is in the
module; enums have the same members; classes the same attributes and methods; and every
function and method the same parameters (names, order, defaults present or not, keyword-only
or not), read from the signature pybind11 writes into each docstring. So the stub cannot
drift from the bindings.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from truesparse import _core

STUB = Path(_core.__file__).with_name("_core.pyi")
if not STUB.is_file():  # an installed package without the stub: use the source tree's
    STUB = Path(__file__).resolve().parents[1] / "python" / "truesparse" / "_core.pyi"


# --- the stub ---------------------------------------------------------------------------------


def _params(fn: ast.FunctionDef) -> list[tuple[str, bool, bool]]:
    """(name, has default, keyword-only) of each parameter, ``self`` left out."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [False] * (len(positional) - len(a.defaults)) + [True] * len(a.defaults)
    out = [(p.arg, d, False) for p, d in zip(positional, defaults)]
    out += [(p.arg, d is not None, True) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return [p for p in out if p[0] != "self"]


def _stub_classes(text: str) -> dict[str, dict]:
    """name -> {"bases", "attributes", "methods": {name: params}, "members"} of a stub."""
    tree = ast.parse(text)
    classes = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        c = {"bases": [b.id for b in node.bases if isinstance(b, ast.Name)]}
        c["attributes"], c["methods"], c["members"] = set(), {}, set()
        for item in node.body:
            if isinstance(item, ast.AnnAssign):
                c["attributes"].add(item.target.id)
            elif isinstance(item, ast.Assign):  # enum member: name = ...
                c["members"].update(t.id for t in item.targets)
            elif isinstance(item, ast.FunctionDef):
                if any(getattr(d, "id", None) == "property" for d in item.decorator_list):
                    c["attributes"].add(item.name)
                else:
                    c["methods"][item.name] = _params(item)
        classes[node.name] = c
    for c in classes.values():  # inherit from stub bases (the private _Network)
        for base in c["bases"]:
            if base in classes:
                c["attributes"] |= classes[base]["attributes"]
                c["methods"] = {**classes[base]["methods"], **c["methods"]}
    return classes


def _stub_functions(text: str) -> dict[str, list]:
    tree = ast.parse(text)
    return {n.name: _params(n) for n in tree.body if isinstance(n, ast.FunctionDef)}


# --- the compiled module ----------------------------------------------------------------------


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets: defaults like ``<Loss.x: 0>`` contain commas."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:])
    return [p.strip() for p in parts]


def _runtime_params(obj) -> list[tuple[str, bool, bool]]:
    """Parameters from pybind11's signature line ``name(a: T, *, b: U = x) -> R``."""
    line = (obj.__doc__ or "").strip().split("\n")[0]
    assert "(" in line, f"{obj!r} has no signature in its docstring: {line!r}"
    inner = line[line.index("(") + 1 : line.rindex(")")]
    out, keyword_only = [], False
    for part in _split_top_level(inner):
        if part == "*":
            keyword_only = True
            continue
        name = part.split(":")[0].split("=")[0].strip()
        if name != "self":
            out.append((name, "=" in part, keyword_only))
    return out


def _public(obj) -> list[str]:
    return sorted(n for n in vars(obj) if not n.startswith("_"))


def _is_enum(cls) -> bool:
    return hasattr(cls, "__members__")  # pybind11's enums


MODULE_NAMES = _public(_core)
STUB_TEXT = STUB.read_text(encoding="utf-8")
STUB_CLASSES = _stub_classes(STUB_TEXT)
STUB_FUNCTIONS = _stub_functions(STUB_TEXT)


def test_the_stub_names_exactly_the_public_names_of_the_module():
    stub = {n for n in STUB_CLASSES if not n.startswith("_")} | set(STUB_FUNCTIONS)
    assert set(MODULE_NAMES) - stub == set(), "in the module but not in the stub"
    assert stub - set(MODULE_NAMES) == set(), "in the stub but not in the module"


CLASSES = [n for n in MODULE_NAMES if inspect.isclass(getattr(_core, n))]
FUNCTIONS = [n for n in MODULE_NAMES if not inspect.isclass(getattr(_core, n))]


@pytest.mark.parametrize("name", CLASSES)
def test_class_matches_the_stub(name):
    cls, stub = getattr(_core, name), STUB_CLASSES[name]
    if _is_enum(cls):
        assert set(cls.__members__) == stub["members"], f"{name}: enum members differ"
        return
    attributes = {
        n for n in _public(cls) if isinstance(vars(cls)[n], property)
    }  # def_readwrite, def_readonly, def_property
    methods = {n for n in _public(cls) if not isinstance(vars(cls)[n], property)}
    assert attributes == stub["attributes"], f"{name}: attributes differ"
    assert methods == set(stub["methods"]) - {"__init__"}, f"{name}: methods differ"
    for method in methods:
        assert _runtime_params(getattr(cls, method)) == stub["methods"][method], (
            f"{name}.{method}: parameters differ"
        )
    if "__init__" in stub["methods"]:
        assert _runtime_params(cls.__init__) == stub["methods"]["__init__"], (
            f"{name}.__init__: parameters differ"
        )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_matches_the_stub(name):
    assert _runtime_params(getattr(_core, name)) == STUB_FUNCTIONS[name], (
        f"{name}: parameters differ"
    )


def test_the_checks_see_a_drift():
    """Edited copies of the stub no longer match the module: a renamed parameter, a
    keyword-only parameter made positional, a dropped default."""
    network = _core.Network_f32
    edits = {
        "layer_is_sparse": ("layer_is_sparse(self, l: int)", "layer_is_sparse(self, i: int)"),
        "__init__": ("        *,\n        inputs: int,", "        inputs: int,"),
        "layer_values": ("gradient: bool = False", "gradient: bool"),
    }
    for method, (old, new) in edits.items():
        assert old in STUB_TEXT, f"the stub no longer contains {old!r}"
        drifted = _stub_classes(STUB_TEXT.replace(old, new, 1))["Network_f32"]["methods"]
        assert (
            _runtime_params(getattr(network, method))
            == STUB_CLASSES["Network_f32"]["methods"][method]
        )
        assert _runtime_params(getattr(network, method)) != drifted[method], method
