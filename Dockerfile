# Dockerfile — mobilellmd in two stages: build on Debian 12 with the
# project's Makefile, run on a slim image with only the shared libraries.
# Models are not baked in: mount them (see docker-compose.yml) and name them
# with MLLMD_MODELS=id=/models/path or a config file.
#
#   docker build -t mobilellmd .
#   docker run -p 8080:8080 -v $PWD/models:/models:ro \
#     -e MLLMD_MODELS=demo=/models/mobilellm-demo mobilellmd

FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
	build-essential pkg-config libmicrohttpd-dev libjansson-dev libuv1-dev \
	libopenblas-dev check && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Build outside the copied tree so no host build directory is reused; the
# deps stamp tells the Makefile the packages above are present.
RUN mkdir -p /out && touch /out/.deps-ok && make BUILD=/out all

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
	libmicrohttpd12 libjansson4 libuv1 libopenblas0-pthread curl ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin mobilellmd
COPY --from=build /out/mobilellmd /usr/local/bin/mobilellmd
COPY config/mobilellmd.conf /etc/mobilellmd/mobilellmd.conf.example
USER mobilellmd
# Listen on every interface inside the container; everything else comes from
# MLLMD_* variables (file < env < flags).
ENV MLLMD_HOST=0.0.0.0 \
    MLLMD_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
	CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# exec form: the daemon is PID 1's child-free process and gets SIGTERM
# directly (graceful drain, exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mobilellmd", "serve"]
