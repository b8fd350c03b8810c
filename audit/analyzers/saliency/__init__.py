"""Saliency: captum attributions per example, ranked globally."""
