"""One module per view. Each has ``NAME``, ``PATH``, ``TITLE``, ``layout(ctx)`` and
``register(app, ctx)``; the data steps behind their callbacks are plain functions that the
tests call without a browser."""
