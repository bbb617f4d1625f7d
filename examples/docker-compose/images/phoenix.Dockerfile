# Arize Phoenix (PyPI): a trace backend with an OTLP endpoint and a UI, in place of
# Jaeger, whose images cannot be fetched here.
FROM schedobs/base:bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/phoenix
ARG PHOENIX_VERSION
RUN /opt/phoenix/bin/pip install -q "arize-phoenix==${PHOENIX_VERSION}"
ENV PHOENIX_WORKING_DIR=/var/lib/phoenix PHOENIX_HOST=0.0.0.0 PHOENIX_PORT=6006 \
    PHOENIX_GRPC_PORT=4317
ENTRYPOINT ["/opt/phoenix/bin/phoenix", "serve"]
