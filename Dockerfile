# tgate container: build on Debian 12, run on a slim Debian 12 runtime as a
# non-root user. Mount the configuration at /etc/tgate/tgate.yaml and the
# certificates it names (e.g. /etc/tgate/tls/); settings can also come from
# the environment (TGATE_*, TEMPORAL_JWT_*; see README.md).
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libevent-dev libnghttp2-dev libssl-dev libyaml-dev \
      libjansson-dev libpcre2-dev libcurl4-openssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION ./
COPY include include
COPY src src
COPY plugins plugins
RUN make -j"$(nproc)" && make install PREFIX=/out

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 libevent-extra-2.1-7 \
      libnghttp2-14 libssl3 libyaml-0-2 libjansson4 libpcre2-8-0 libcurl4 zlib1g \
      ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 --no-create-home tgate
COPY --from=build /out/bin/tgate /usr/local/bin/tgate
COPY --from=build /out/lib/tgate /usr/local/lib/tgate
USER 10001
EXPOSE 7233 9233
# The admin listener must be reachable inside the container (admin.address,
# e.g. 0.0.0.0:9233 or TGATE_ADMIN_ADDRESS); bash's /dev/tcp keeps the image
# free of curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${TGATE_ADMIN_PORT:-9233} && printf 'GET /health/live HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/tgate"]
CMD ["-c", "/etc/tgate/tgate.yaml"]
