"""Trestle's importable helpers for apps it serves.

The server puts this package's folder on sys.path. Nothing is needed from it
to serve a WSGI app; later versions add the loop access and Flask integration.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
