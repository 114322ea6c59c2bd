"""Certificates from acme.sh, certbot or plain files: where they are, read and checked.

May touch: reads the certificate source files; writes nothing."""
