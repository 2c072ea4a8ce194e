"""The HTTP edge: routes that call services, ``Annotated`` dependencies (``deps.py``: the
request's session, the caller's key), RFC 9457 problems and the request guards."""
