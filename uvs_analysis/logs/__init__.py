"""Cloud Run logs: sources, normalization, analysis."""
