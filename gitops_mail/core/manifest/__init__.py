"""The manifest ``gitops-mail.yaml``: its JSON Schema, the generated validator, the model
and its rules.

Pure: YAML bytes in, a ``Manifest`` and problems out."""
