"""uvs-analysis: incident analysis workbook for WebSocket failures on Cloud Run."""

__all__ = ["__version__"]

__version__ = "0.1.0"
