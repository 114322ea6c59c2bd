"""gitops-mail: a chasquid mail server managed from a git repository."""

__version__ = "0.1.0"
