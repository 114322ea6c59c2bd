"""Validation: one module per part of the repo (layout, cross, users, aliases, conf, graph),
each returning ``Problem`` lists; ``validate.validate`` runs them all. Pure."""
