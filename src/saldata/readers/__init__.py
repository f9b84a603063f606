"""Readers for downstream users: ``saldata.open`` and the torch Dataset."""
