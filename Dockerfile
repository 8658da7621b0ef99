# tgate container: build on Debian 12, run on a slim Debian 12 runtime.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libevent-dev libnghttp2-dev libssl-dev libyaml-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile VERSION ./
COPY include include
COPY src src
RUN make -j"$(nproc)" && make install PREFIX=/out

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 libnghttp2-14 libssl3 \
      libyaml-0-2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 tgate
COPY --from=build /out/bin/tgate /usr/local/bin/tgate
USER tgate
EXPOSE 7233 9233
ENTRYPOINT ["/usr/local/bin/tgate"]
CMD ["-c", "/etc/tgate/tgate.yaml"]
