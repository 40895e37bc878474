"""ssp's web apps: the AI-tweets dashboard (``ssp dashboard``) and, beside it, the tagger.

Both are Flask application factories; what they share (security headers, query-string parsing,
link safety, error pages and the WSGI server) lives in :mod:`ssp.web.common`.
"""
