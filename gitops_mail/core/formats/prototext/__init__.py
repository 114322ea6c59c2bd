"""Text protobuf as Go reads it: the lexer (``go``), files of known scalar fields
(``plain``), and the protobuf library for everything else (``library``).

Pure."""
