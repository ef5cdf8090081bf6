"""Reports how many objects the garbage collector has frozen (gc.freeze())."""
import gc

LOADED = [object() for _ in range(100)]   # made at import: frozen with the rest


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(gc.get_freeze_count()).encode()]
