# syntax=docker/dockerfile:1
# One image for the API, the worker, migrations and the canary (a different command each:
# docker-compose.otel.yml). Dependencies are installed with constraints.txt, the exact versions
# CI tested. Checked statically by tests/stack/test_dockerfile.py (no Docker engine in CI).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY otel ./otel
RUN /opt/venv/bin/pip install --no-compile -c constraints.txt . \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TRAWL_DATA_DIR=/var/lib/trawl
RUN groupadd --system --gid 10001 trawl \
 && useradd --system --uid 10001 --gid trawl --home-dir /var/lib/trawl --shell /usr/sbin/nologin trawl \
 && mkdir -p /var/lib/trawl && chown trawl:trawl /var/lib/trawl
COPY --from=build /opt/venv /opt/venv
WORKDIR /var/lib/trawl
USER trawl:trawl
EXPOSE 8000
# The API's readiness; the worker overrides it (python -m app.healthcheck worker) in compose.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=6 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=3)"]
CMD ["python", "-m", "app.serve", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
