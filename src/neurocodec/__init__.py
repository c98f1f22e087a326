"""neurocodec: neural image compression with portable bitstreams and shipped models."""

__version__ = "0.1.0"
