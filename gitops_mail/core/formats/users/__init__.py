"""chasquid's users database: the text protobuf (``text``, a proven fast reader), the
model and scrypt (``db``), PRECIS names (``names``).

Pure."""
