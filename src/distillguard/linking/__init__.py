"""Linking: evidence that accounts share an operator, and the communities it forms."""
