"""A FastAPI app (tests/apps/fastapi_app.py) served natively over ASGI by trestle."""
import pytest
import requests

APP = "fastapi_app:app"
TIMEOUT = 15


@pytest.fixture
def srv(serve):
    return serve(APP, "--graceful-timeout", "3")


def test_valid_body_is_200(srv):
    srv.wait_log(r"serving fastapi_app:app \(ASGI, ")
    r = requests.post(srv.url + "/items", json={"name": "widget", "price": 10.0, "tags": ["a", "b"]}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"name": "widget", "price": 10.0, "tags": ["a", "b"], "price_with_tax": 12.0}
    r = requests.post(srv.url + "/items", json={"name": "w", "price": "2.5"}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["tags"] == [] and r.json()["price"] == 2.5


def test_invalid_body_is_422(srv):
    r = requests.post(srv.url + "/items", json={"name": "widget", "price": -1}, timeout=TIMEOUT)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "price"]]
    r = requests.post(srv.url + "/items", json={"price": "not a number"}, timeout=TIMEOUT)
    assert r.status_code == 422
    assert sorted(tuple(d["loc"]) for d in r.json()["detail"]) == [("body", "name"), ("body", "price")]
    r = requests.post(srv.url + "/items", data=b"{not json", headers={"Content-Type": "application/json"},
                      timeout=TIMEOUT)
    assert r.status_code == 422
    # Wrong method on the route.
    assert requests.get(srv.url + "/items", timeout=TIMEOUT).status_code == 405
