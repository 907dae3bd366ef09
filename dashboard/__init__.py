"""The tuneloom dashboard: Dash pages over a store, live push, job controls."""

from dashboard.app import create_app
from dashboard.server import serve, start

__all__ = ["create_app", "serve", "start"]
