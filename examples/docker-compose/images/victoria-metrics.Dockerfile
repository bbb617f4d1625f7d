# VictoriaMetrics from Debian trixie's package (the binary `make test` unpacks into .cache/).
FROM schedobs/base:bookworm
COPY victoria-metrics /usr/local/bin/victoria-metrics
ENTRYPOINT ["/usr/local/bin/victoria-metrics"]
