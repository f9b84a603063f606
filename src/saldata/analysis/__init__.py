"""Analyses over an extraction output: word overlays for people, word statistics for papers."""
