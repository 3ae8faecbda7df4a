"""Outputs: the report built once from a run, and its renderings (console, JSON, HTML, JUnit), verdict inputs
(thresholds, baseline) and run folders. It reads the engine's and Amanflix's records;
nothing below imports it."""
