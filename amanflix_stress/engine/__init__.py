"""The load engine: HTTP client, simulated-user threads, workers, coordinator, aggregation and statistics.

It knows nothing of Amanflix or of reports: it imports only itself and `amanflix_stress.errors`."""
