"""Fuzz harnesses for the packet parser and the policy loader (see docs/operations.md)."""
