"""Ray Serve deployments (LLM, retriever, API), composed by services.app.build_app."""
