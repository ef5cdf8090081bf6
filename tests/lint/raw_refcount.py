#!/usr/bin/env python3
"""Fails when C++ outside bridge/python counts Python references by hand.

Owned references are py::ref, borrowed ones py::borrowed, and C types go
through py::c_type (bridge/python); Py_INCREF, Py_DECREF and their kin are
allowed only there. Comments are not code and are skipped; Py_RETURN_NONE
and Py_VISIT are left alone (the C API's own idioms for a return value and
a traversal, not bookkeeping).

    raw_refcount.py SOURCE_DIR     check the tree
    raw_refcount.py --self-test    check that the check catches what it should
"""
import pathlib
import re
import sys
import tempfile

SCANNED = ("bridge", "adapters", "tests")
ALLOWED = ("bridge/python/",)
SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp"}
CALL = re.compile(r"\bPy_(?:X?INCREF|X?DECREF|CLEAR|X?NewRef|X?SETREF|IncRef|DecRef)\s*\(")
COMMENT_OR_STRING = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""", re.S)


def blank(m):
    # Keep the newlines so that line numbers stay right.
    return "".join("\n" if c == "\n" else " " for c in m.group(0))


def violations(root):
    root = pathlib.Path(root)
    for top in SCANNED:
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.suffix not in SUFFIXES or rel.startswith(ALLOWED) or not path.is_file():
                continue
            code = COMMENT_OR_STRING.sub(blank, path.read_text(errors="replace"))
            for n, line in enumerate(code.splitlines(), 1):
                if CALL.search(line):
                    yield f"{rel}:{n}: {line.strip()}"


def self_test():
    cases = {
        "bridge/python/ok.hpp": "inline void f(PyObject* o) { Py_INCREF(o); Py_XDECREF(o); }\n",
        "adapters/a/quiet.cpp": ("// Py_DECREF(x) in a comment\n/* Py_INCREF(y)\n   Py_CLEAR(z) */\n"
                                 "const char* s = \"Py_DECREF(w)\";\nPyObject* f() { Py_RETURN_NONE; }\n"
                                 "int g(PyObject* o, visitproc visit, void* arg) { Py_VISIT(o); return 0; }\n"),
        "adapters/a/bad.cpp": "void f(PyObject* o) {\n    Py_XDECREF (o);\n    char q = '\"'; Py_INCREF(o);\n}\n",
        "bridge/net/bad.hpp": "PyObject* g(PyObject* o) { return Py_NewRef(o); }\n",
        "tests/unit/bad.cpp": "void h(PyObject* o) { Py_SETREF(o, nullptr); Py_DecRef(o); }\n",
        "bridge/pythonic/bad.cpp": "void k(PyObject* o) { Py_CLEAR(o); }\n",
    }
    with tempfile.TemporaryDirectory() as d:
        for rel, text in cases.items():
            p = pathlib.Path(d, rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        found = sorted(v.split(":")[0] + ":" + v.split(":")[1] for v in violations(d))
    want = ["adapters/a/bad.cpp:2", "adapters/a/bad.cpp:3", "bridge/net/bad.hpp:1", "bridge/pythonic/bad.cpp:1", "tests/unit/bad.cpp:1"]
    if found != want:
        print(f"self-test: found {found}, expected {want}")
        return 1
    print("self-test: ok")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    found = list(violations(argv[1]))
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} raw reference count(s) outside bridge/python: use py::ref, py::borrowed or py::c_type")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
