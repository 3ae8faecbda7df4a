"""amanflix-stress: load tests that reproduce, detect and explain Amanflix's SQLite lock failures."""

__version__ = "0.1.0"
