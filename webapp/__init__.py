"""The web app: annotators and verifiers work the queues in a browser, and a live dashboard.

``webapp.app.create_app`` builds the FastAPI application; ``dataengine serve`` runs it.
"""
