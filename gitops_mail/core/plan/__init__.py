"""The plan between two states: the model (changes, action), how it is made, the mail part.

Pure: two ``State`` values in, a ``Plan`` out."""
