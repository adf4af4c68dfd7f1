"""API gateway: the one public API: routing, token checks, rate limits, CORS, aggregation, streaming."""
