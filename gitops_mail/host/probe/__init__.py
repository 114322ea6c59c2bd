"""Probing the live chasquid: what to check (``spec``) and the SMTP/TLS conversation (``smtp``).

May touch: the network, only the server's own listening addresses."""
