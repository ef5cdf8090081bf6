"""Fixture: apps made by factories, with and without arguments."""


def create_app(greeting="hello"):
    def app(environ, start_response):
        body = greeting.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    return app


not_callable = 42
