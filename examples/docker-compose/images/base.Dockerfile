# The base of every image of the stack: Debian bookworm (minbase, made by
# debootstrap and imported by build-images.sh; no registry needed) with the CA
# bundle of the machine that builds it, so apt and pip work behind an
# intercepting proxy as they do on the host.
FROM schedobs/rootfs:bookworm
# Its own path: Debian's ca-certificates package (python3 pulls it in) rewrites the
# usual one.
COPY ca-certificates.crt /etc/ssl/build-host-ca.crt
ENV SSL_CERT_FILE=/etc/ssl/build-host-ca.crt \
    PIP_CERT=/etc/ssl/build-host-ca.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/build-host-ca.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8
