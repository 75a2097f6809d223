"""photo-curate: nightly, reproducible curation of photo collections."""

__version__ = "0.1.0"
