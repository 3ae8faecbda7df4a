"""amanflix-stress: a load-testing suite that reproduces, detects and explains Amanflix's SQLite lock failures."""

__version__ = "0.1.0"
