"""Fixture: importing this module fails inside the module itself."""
import this_module_does_not_exist_anywhere  # noqa: F401
