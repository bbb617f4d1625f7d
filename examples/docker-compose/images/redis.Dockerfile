# Debian's Redis: the Celery example's broker and reference clock.
FROM schedobs/base:bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/redis-server"]
