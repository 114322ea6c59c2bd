"""YAML with line numbers: load a document, point at a key, list every schema error at once.

Pure: bytes in, values and problems out."""
