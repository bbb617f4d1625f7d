# The OpenTelemetry Collector built by `make collector` from collector/ (its own Go modules).
FROM schedobs/base:bookworm
COPY otelcol /usr/local/bin/otelcol
ENTRYPOINT ["/usr/local/bin/otelcol"]
CMD ["--config=/etc/otelcol/config.yaml"]
