"""Utilities shared by every function of the stack (shipped as the `common` Lambda layer)."""
