"""Answering: conversations, answer selection, prompts, grounding, one Answerer; no Ray."""
