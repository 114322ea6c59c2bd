"""chasquid's own file formats: pure parsers and renderers (no I/O)."""
