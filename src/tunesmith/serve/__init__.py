"""`tunesmith serve`: a finished run behind an OpenAI-compatible HTTP API."""
