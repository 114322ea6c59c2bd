"""A delivery agent for chasquid in tests: one mailbox file per recipient."""

from __future__ import annotations

MDA = """#!/bin/sh
# Delivery agent: appends the message on stdin to {mailboxes}/<recipient>.
set -eu
tmp=$(mktemp "{mailboxes}/.incoming.XXXXXX")
cat >"$tmp"
cat "$tmp" >>"{mailboxes}/$1"
rm -f "$tmp"
"""
