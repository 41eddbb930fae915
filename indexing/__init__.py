"""The document library: loading, chunking, embedding and the FAISS index store. No Ray inside."""
