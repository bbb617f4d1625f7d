# Debian's Prometheus server.
FROM schedobs/base:bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/prometheus"]
