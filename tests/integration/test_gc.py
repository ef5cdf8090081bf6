"""The apps' loaded heap is frozen out of the collector's generations
(gc.freeze()) once they have loaded, so request-time collections do not walk it."""
import requests


def test_the_loaded_heap_is_frozen(serve):
    srv = serve("gc_app:app")
    frozen = int(requests.get(srv.url + "/", timeout=10).text)
    assert frozen > 1000, frozen   # the interpreter's and the app's objects, at least
