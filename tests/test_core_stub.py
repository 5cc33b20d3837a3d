"""The typed bindings: edgeseg/_core.pyi names exactly what edgeseg._core exports, and both ship."""

from __future__ import annotations

import ast
from pathlib import Path

import edgeseg
from edgeseg import _core

PACKAGE = Path(edgeseg.__file__).resolve().parent


def stub_names() -> dict[str, set[str]]:
    """Top-level names of the installed stub, and the members of each class in it."""
    stub = PACKAGE / "_core.pyi"
    assert stub.is_file(), f"{stub} is not installed next to the extension"
    tree = ast.parse(stub.read_text())
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            members = (
                {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                if isinstance(node, ast.ClassDef)
                else set()
            )
            names[node.name] = members
    return names


def test_stub_and_module_name_the_same_functions_and_classes() -> None:
    stub = stub_names()
    runtime = {n for n in dir(_core) if not n.startswith("_")}
    assert set(stub) == runtime
    layouts = ("YoloLayout", "SplitLayout", "YolactLayout", "RtmdetLayout", "Solov2Layout", "DetsLayout")
    for cls in ("Letterbox", "Tracker", *layouts):
        public = {n for n in dir(getattr(_core, cls)) if not n.startswith("_")}
        assert stub[cls] - {"__init__"} == public, cls


def test_package_is_marked_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()
