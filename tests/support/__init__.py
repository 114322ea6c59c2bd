"""Helpers shared by the test tiers, imported as ``support.<module>``.

``tests/`` is on ``sys.path`` because pytest imports ``tests/conftest.py``
(rootdir-relative "prepend" import mode), so ``from support.livetree import
tree_state`` works from any test module or fixture plugin.
"""
