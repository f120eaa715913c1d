# syntax=docker/dockerfile:1
#
# One image for the agent, the reference consumers and the command line:
#
#   docker build -t drehscheibe:local .
#   docker run --rm drehscheibe:local --help
#   docker run --rm -v "$PWD/deploy:/etc/drehscheibe:ro" drehscheibe:local agent run -c /etc/drehscheibe/agent.yaml
#
# Stage `build` makes the project's wheel with the agent's hot path compiled (tools/native.py,
# through the build hook tools/hatch_native.py: a wheel for this Python and platform) and
# collects the wheels of everything it depends on. The compiler and the tools the compiling
# needs (`tools/native.py requirements`, in a virtual environment of their own) stay in it.
# The runtime stage installs from that wheelhouse alone (--no-index): no source tree, no
# compiler, no network; it runs as an unprivileged user with its data in /var/lib/drehscheibe.
# tests/deploy/test_dockerfile.py runs these RUN commands without Docker.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HATCH_BUILD_HOOK_ENABLE_CUSTOM=true
WORKDIR /src
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY tools/native.py tools/hatch_native.py tools/
COPY ngsi/ ngsi/
COPY models/ models/
COPY agents/ agents/
COPY schemas/ schemas/
COPY drehscheibe/ drehscheibe/
RUN --mount=type=cache,target=/root/.cache/pip \
    python tools/native.py requirements > build-requirements.txt \
 && python -m venv /opt/build \
 && /opt/build/bin/python -m pip install --requirement build-requirements.txt \
 && /opt/build/bin/python -m pip wheel --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="drehscheibe" \
      org.opencontainers.image.description="LoRaWAN sensor data into FIWARE NGSI-LD, and out to its consumers" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/drehscheibe/bin:$PATH
RUN groupadd --system --gid 10001 drehscheibe \
 && useradd --system --uid 10001 --gid drehscheibe --home-dir /var/lib/drehscheibe \
      --no-create-home --shell /usr/sbin/nologin drehscheibe \
 && install -d -o drehscheibe -g drehscheibe -m 0750 /var/lib/drehscheibe
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/drehscheibe \
 && /opt/drehscheibe/bin/python -m pip install --no-index --find-links /wheels drehscheibe
USER 10001:10001
WORKDIR /var/lib/drehscheibe
# 8080 the agent (webhooks, /metrics, /healthz); 8091-8093 the traffic, environment and
# planning consumers (POST /notify, GET /health).
EXPOSE 8080 8091 8092 8093
# The agent's liveness by default; a consumer sets DREHSCHEIBE_HEALTHCHECK_URL to its /health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('DREHSCHEIBE_HEALTHCHECK_URL', 'http://127.0.0.1:8080/healthz'), timeout=4)"]
ENTRYPOINT ["drehscheibe"]
CMD ["--help"]
