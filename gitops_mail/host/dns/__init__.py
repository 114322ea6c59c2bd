"""Asking live DNS (``query``), evaluating SPF through it (``evaluate``) and reading zone text
(``zonefile``): the only modules that import dnspython and pyspf.

May touch: the network, only to ask DNS (the resolver, a zone's authoritative servers)."""
