"""raydl's version, in a module of its own: the run manifest records it, and importing
the package root for it would import everything the root re-exports."""

__version__ = "0.1.0"
