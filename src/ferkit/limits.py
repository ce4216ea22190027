"""Resource limits on reading user input, stated once (the CLI shows them in ``--help`` without
importing the modules that apply them): decode budgets in pixels, decode concurrency of
``ferkit serve`` and its body-read timeout."""

# CLI and API: 64 megapixels (9248 x 6936, larger than most camera photos) decode to ~200 MB of
# RGB; Pillow's own transient copies (mode conversion, EXIF rotation) about double it.
DEFAULT_MAX_PIXELS = 64_000_000
# ferkit serve: 24 megapixels (6000 x 4000, a full camera photo) decode to ~72 MB of RGB; with
# SERVE_DECODE_SLOTS photos at once, eight such uploads together peaked at 2.2 GB (measured:
# benchmarks/serve_memory.py, docs/benchmarks/serve_memory.md).
SERVE_MAX_PIXELS = 24_000_000
SERVE_DECODE_SLOTS = 2
SERVE_BODY_TIMEOUT_S = 30.0  # a body that has not fully arrived by then is dropped (408)
