"""The type stubs editors complete from say what the module has: every name it exports
is in them, every class and function in them exists, with the same methods."""

import ast
import inspect
import pathlib

import ganga_rs

STUBS = pathlib.Path(ganga_rs.__file__).with_name("_native.pyi")
# Names only the stubs have: type aliases and a base class that documents the systems.
STUB_ONLY = {"Status", "Word", "Value", "PathLike", "_BatchSystem"}


def stub_names():
    tree = ast.parse(STUBS.read_text())
    classes, functions, variables = {}, set(), set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef)
            } | {
                n.target.id
                for n in node.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            }
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            variables.add(node.target.id)
        elif isinstance(node, ast.Assign):
            variables.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return classes, functions, variables


def test_every_exported_name_is_in_the_stubs():
    classes, functions, variables = stub_names()
    in_stubs = set(classes) | functions | variables
    assert set(ganga_rs.__all__) <= in_stubs, set(ganga_rs.__all__) - in_stubs
    assert in_stubs - STUB_ONLY <= set(ganga_rs.__all__), in_stubs - STUB_ONLY - set(ganga_rs.__all__)


def test_every_method_in_the_stubs_exists():
    classes, functions, _ = stub_names()
    for name in functions:
        assert callable(getattr(ganga_rs, name)), name
    for name, members in classes.items():
        if name in STUB_ONLY:
            continue
        cls = getattr(ganga_rs, name)
        assert inspect.isclass(cls), name
        if issubclass(cls, BaseException):
            # Their attributes are set on each exception raised.
            continue
        # __getattr__ is a slot of the native class, not an attribute of it.
        for member in members - {"__init__", "__getattr__"}:
            # Backend options are attributes only when set; everything else is declared.
            if issubclass(cls, ganga_rs.Backend) and name != "Backend" and member not in dir(ganga_rs.Backend):
                continue
            assert hasattr(cls, member), f"{name}.{member}"
