"""llama-rag: LLaMA models over your own documents, on Ray."""

__version__ = "0.1.0"
