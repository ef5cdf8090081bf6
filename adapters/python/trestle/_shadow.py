"""Shadow mode's comparison of two answers to one request. Not a public API.

The C++ side (adapters/shadow) captures both responses and settles the
common case, byte-identical answers, without Python. It calls judge() only
when the bytes differ: then JSON bodies are compared as JSON (key order
ignored, the configured paths left out, the normalizer applied), and a
mismatch comes back as one JSON document with both responses and a
readable diff, for the dashboard and the JSONL file.
"""
import difflib
import importlib
import json
import re
import time

BODY_SHOWN = 4096        # bytes of each body kept in a mismatch record
DIFF_LINES = 120         # lines of a diff kept
_MISSING = object()


class PathError(ValueError):
    pass


_TOKEN = re.compile(r"""
    \.\.(?P<deep>[A-Za-z_][\w-]*|\*)      # ..name: at any depth
  | \.(?P<name>[A-Za-z_][\w-]*|\*)        # .name or .*
  | \[(?P<index>\d+|\*)\]                 # [3] or [*]
  | \[(?P<q>['"])(?P<quoted>.*?)(?P=q)\]  # ['name'] or ["name"]
""", re.VERBOSE)


def parse_path(text):
    """A JSONPath subset: $, .name, ['name'], [n], [*], .*, ..name."""
    s = text.strip()
    if s.startswith("$"):
        s = s[1:]
    elif s and not s.startswith((".", "[")):
        s = "." + s
    steps = []
    pos = 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            raise PathError(f"shadow_ignore: cannot read '{text}' at '{s[pos:]}' "
                            "(expected $.name, $.list[*].name, $..name)")
        if m.group("deep"):
            steps.append(("deep", m.group("deep")))
        elif m.group("name"):
            steps.append(("key", m.group("name")))
        elif m.group("index"):
            i = m.group("index")
            steps.append(("index", "*" if i == "*" else int(i)))
        else:
            steps.append(("key", m.group("quoted")))
        pos = m.end()
    if not steps:
        raise PathError(f"shadow_ignore: '{text}' names the whole body")
    return steps


def _drop(value, steps):
    """Removes what `steps` names from `value`, in place."""
    kind, arg = steps[0]
    last = len(steps) == 1
    if kind == "deep":
        rest = [("key", arg)] + steps[1:]
        _drop(value, rest)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in list(children):
            _drop(child, steps)
        return
    if kind == "key" and isinstance(value, dict):
        keys = list(value) if arg == "*" else [arg] if arg in value else []
        for k in keys:
            if last:
                del value[k]
            else:
                _drop(value[k], steps[1:])
    elif kind in ("index", "key") and isinstance(value, list) and (kind == "index" or arg == "*"):
        idx = list(range(len(value))) if arg == "*" else [arg] if isinstance(arg, int) and arg < len(value) else []
        if last:
            for i in reversed(idx):
                del value[i]
        else:
            for i in idx:
                _drop(value[i], steps[1:])


def _load_function(name):
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ValueError(f"shadow_normalizer '{name}': expected module:function")
    fn = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"shadow_normalizer '{name}' is not callable")
    return fn


class Settings:
    """One shadowed mount's comparison settings, checked at start-up."""

    def __init__(self, mount, headers, ignore, normalizer):
        self.mount = mount
        self.headers = [h.lower() for h in headers]
        self.ignore = [parse_path(p) for p in ignore]
        self.normalizer = _load_function(normalizer) if normalizer else None


def _is_json(headers):
    ct = dict(headers).get("content-type", "")
    return "json" in ct.split(";")[0].lower()


def _body_value(settings, resp):
    """What is compared of a body: parsed JSON with the ignored paths gone,
    else its text (or its bytes), after the normalizer."""
    status, headers, body, size, complete, unseen = resp
    value = _MISSING
    if _is_json(headers) and len(body) == size:
        try:
            value = json.loads(body)
        except ValueError:
            value = _MISSING
    if value is not _MISSING:
        for steps in settings.ignore:
            _drop(value, steps)
        kind = "json"
    else:
        try:
            value, kind = body.decode("utf-8"), "text"
        except UnicodeDecodeError:
            value, kind = body, "bytes"
    if settings.normalizer is not None:
        value = settings.normalizer(value)
    return kind, value


def _json_diff(a, b, path, out):
    if len(out) >= DIFF_LINES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if re.fullmatch(r"[A-Za-z_][\w]*", str(k)) else f"{path}[{json.dumps(k)}]"
            if k not in b:
                out.append(f"{p}: only in primary: {_short(a[k])}")
            elif k not in a:
                out.append(f"{p}: only in shadow: {_short(b[k])}")
            else:
                _json_diff(a[k], b[k], p, out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            if i >= len(b):
                out.append(f"{path}[{i}]: only in primary: {_short(a[i])}")
            elif i >= len(a):
                out.append(f"{path}[{i}]: only in shadow: {_short(b[i])}")
            else:
                _json_diff(a[i], b[i], f"{path}[{i}]", out)
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: primary {_short(a)}, shadow {_short(b)}")


def _short(v, limit=200):
    s = json.dumps(v, sort_keys=True, default=repr)
    return s if len(s) <= limit else s[:limit] + "..."


def _text(body):
    return body[:BODY_SHOWN].decode("utf-8", "replace")


def _record(resp):
    status, headers, body, size, complete, unseen = resp
    r = {"status": status, "headers": dict(headers), "body": _text(body), "size": size}
    if size > len(body[:BODY_SHOWN]):
        r["body_truncated"] = True
    if not complete:
        r["incomplete"] = True
    return r


def judge(settings, route, method, target, primary, shadow):
    """None when the answers agree, else the mismatch as a JSON document.

    primary, shadow: (status, [(name, value)], body bytes (maybe cut short),
    body size, complete, unseen).
    """
    diff = []
    if primary[0] != shadow[0]:
        diff.append(f"status: primary {primary[0]}, shadow {shadow[0]}")
    ph, sh = dict(primary[1]), dict(shadow[1])
    for name in settings.headers:
        if ph.get(name) != sh.get(name):
            diff.append(f"header {name}: primary {ph.get(name)!r}, shadow {sh.get(name)!r}")
    if not primary[4] or not shadow[4]:
        side = "primary" if not primary[4] else "shadow"
        diff.append(f"the {side}'s response did not end properly")
    if primary[5] or shadow[5]:
        if primary[3] != shadow[3]:
            diff.append(f"body: sent as a file; primary {primary[3]} bytes, shadow {shadow[3]} bytes")
    elif len(primary[2]) < primary[3] or len(shadow[2]) < shadow[3]:
        # Too large to hold: the C++ side found the digests or sizes apart.
        if primary[2] != shadow[2] or primary[3] != shadow[3]:
            diff.append(f"body: differs (primary {primary[3]} bytes, shadow {shadow[3]} bytes; too large to show)")
        else:
            diff.append(f"body: differs past the first {len(primary[2])} bytes ({primary[3]} bytes each)")
    else:
        pk, pv = _body_value(settings, primary)
        sk, sv = _body_value(settings, shadow)
        if pk == "json" and sk == "json":
            _json_diff(pv, sv, "$", diff)
        elif pv != sv:
            if pk == sk == "text" and isinstance(pv, str) and isinstance(sv, str):
                lines = difflib.unified_diff(pv.splitlines(), sv.splitlines(), "primary", "shadow", lineterm="", n=2)
                diff.extend(list(lines)[:DIFF_LINES])
            else:
                diff.append(f"body: primary {primary[3]} bytes ({pk}), shadow {shadow[3]} bytes ({sk})")
    if not diff:
        return None
    if len(diff) > DIFF_LINES:
        diff = diff[:DIFF_LINES] + [f"... ({len(diff) - DIFF_LINES} more lines)"]
    return json.dumps({
        "time": round(time.time(), 3),
        "mount": settings.mount,
        "route": route,
        "method": method,
        "target": target,
        "diff": "\n".join(diff),
        "primary": _record(primary),
        "shadow": _record(shadow),
    }, default=repr)
