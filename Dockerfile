# syntax=docker/dockerfile:1.7
# pullguard's container image: the admission webhook (`pullguard serve`) and the CLI.
#
# Two stages on the same slim Python base: the builder turns this source tree into a wheel and
# installs it, with its dependencies as prebuilt wheels only, into a virtualenv at $VENV; the
# final stage copies nothing but that virtualenv. It runs no package manager, has no compiler,
# no pip in the venv and no source tree, and runs as a numeric non-root user (Kubernetes can then
# verify runAsNonRoot without a passwd entry).
#
# Every RUN of the builder refers to absolute paths only through $VENV and WORKDIR, so
# tests/test_dockerfile.py can replay these exact commands in a temporary directory.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t pullguard:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VENV=/opt/pullguard
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
# the wheel of this tree (setuptools comes from pip's isolated build environment)
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip wheel --no-deps --wheel-dir dist .
# a venv without pip: the base image's pip installs into it from outside
RUN python -m venv --without-pip "$VENV"
# dependencies as wheels only: nothing is compiled, so no build tools are ever needed
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip --python "$VENV/bin/python" install --only-binary=:all: dist/pullguard-*.whl
RUN "$VENV/bin/pullguard" --help > /dev/null

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="pullguard" \
      org.opencontainers.image.description="Admission webhook and CLI that refuse Pods whose images the node cannot pull, with the identity kubelet will actually use." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/pullguard/pullguard" \
      org.opencontainers.image.url="https://github.com/pullguard/pullguard" \
      org.opencontainers.image.documentation="https://github.com/pullguard/pullguard#install-with-helm" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# the root filesystem is read-only in the chart: no bytecode writes, logs unbuffered, $HOME writable
ENV VENV=/opt/pullguard \
    PATH=/opt/pullguard/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=builder /opt/pullguard /opt/pullguard
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443
ENTRYPOINT ["/opt/pullguard/bin/pullguard"]
CMD ["--help"]
