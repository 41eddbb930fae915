"""Evaluation of answers and retrieval: QA sets from a corpus, scores, reports, the gate."""
