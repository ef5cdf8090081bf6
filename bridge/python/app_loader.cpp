#include "bridge/python/app_loader.hpp"

#include "bridge/python/interpreter.hpp"

#include <cstdio>
#include <cstdlib>

namespace trestle::py {

namespace {

[[noreturn]] void fail(int code, const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s\n", msg.c_str());
    std::exit(code);
}

[[noreturn]] void fail_with_traceback(const std::string& msg) {
    std::fprintf(stderr, "trestle: error: %s\n", msg.c_str());
    print_exception();
    std::exit(1);
}

std::string current_exception_text() {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    ref t = ref::steal(type), v = ref::steal(value), b = ref::steal(tb);
    return text(v.get(), "unknown error");
}

// True when the ModuleNotFoundError is about `module` itself (or one of its
// parent packages), not about something the module imports.
bool missing_is_target(const std::string& module) {
    if (!PyErr_ExceptionMatches(PyExc_ModuleNotFoundError)) return false;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    bool target = false;
    if (value) {
        ref name = ref::steal(PyObject_GetAttrString(value, "name"));
        if (name && PyUnicode_Check(name.get())) {
            std::string n = text(name.get());
            target = module == n || module.rfind(n + ".", 0) == 0;
        }
        PyErr_Clear();
    }
    PyErr_Restore(type, value, tb);
    return target;
}

} // namespace

ref load_app(const std::string& spec) {
    std::string module = spec, attr;
    if (auto colon = spec.find(':'); colon != std::string::npos) {
        module = spec.substr(0, colon);
        attr = spec.substr(colon + 1);
        if (attr.empty()) fail(2, "app '" + spec + "': nothing after ':' (expected module:attr)");
    }
    if (module.empty()) fail(2, "app '" + spec + "': empty module name");

    ref mod = ref::steal(PyImport_ImportModule(module.c_str()));
    if (!mod) {
        if (missing_is_target(module))
            fail(2, "cannot import app module '" + module + "': " + current_exception_text());
        fail_with_traceback("exception while importing '" + module + "':");
    }

    if (attr.empty()) {
        for (const char* name : {"application", "app"}) {
            if (PyObject_HasAttrString(mod.get(), name)) {
                attr = name;
                break;
            }
        }
        if (attr.empty()) fail(2, "module '" + module + "' has no 'application' or 'app'; use module:attr");
    }

    std::string call_args;
    bool is_call = false;
    std::string path = attr;
    if (auto paren = attr.find('('); paren != std::string::npos) {
        if (attr.back() != ')') fail(2, "app '" + spec + "': unbalanced parentheses");
        is_call = true;
        path = attr.substr(0, paren);
        call_args = attr.substr(paren + 1, attr.size() - paren - 2);
    }

    ref obj = std::move(mod);
    std::size_t start = 0;
    while (start <= path.size()) {
        auto dot = path.find('.', start);
        std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        ref next = ref::steal(PyObject_GetAttrString(obj.get(), part.c_str()));
        if (!next) {
            PyErr_Clear();
            fail(2, "module '" + module + "' has no attribute '" + path + "'");
        }
        obj = std::move(next);
        if (dot == std::string::npos) break;
        start = dot + 1;
    }

    if (is_call) {
        ref args = ref::steal(PyTuple_New(0));
        if (!call_args.empty()) {
            // Literal arguments only, parsed by ast.literal_eval, as gunicorn does.
            ref ast = ref::steal(PyImport_ImportModule("ast"));
            ref text = ref::steal(PyUnicode_FromString(("(" + call_args + ",)").c_str()));
            args = ref::steal(ast ? PyObject_CallMethod(ast.get(), "literal_eval", "O", text.get()) : nullptr);
            if (!args || !PyTuple_Check(args.get())) {
                PyErr_Clear();
                fail(2, "app '" + spec + "': factory arguments must be Python literals");
            }
        }
        ref made = ref::steal(PyObject_Call(obj.get(), args.get(), nullptr));
        if (!made) fail_with_traceback("app factory '" + spec + "' raised:");
        obj = std::move(made);
    }
    if (!PyCallable_Check(obj.get())) fail(2, "app '" + spec + "' is not callable");
    return obj;
}

} // namespace trestle::py
