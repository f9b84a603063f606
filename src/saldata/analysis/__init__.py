"""Analyses over an extraction output: word overlays for people, word statistics for papers,
saliency metrics against eye-tracking ground truth."""
