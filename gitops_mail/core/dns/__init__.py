"""DNS records to publish for each domain (``zone``: ``dns/<domain>.zone``).

Pure: what DNS *should* say. Asking live DNS what it *does* say is the host's job."""
