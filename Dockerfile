# Dockerfile — mobilellmd in two stages: build on Debian 12 with the
# project's Makefile, run on a slim image with only the shared libraries.
# The project's 18 MB demo model is baked in and served by default; mount
# your own checkpoints and name them with MLLMD_MODELS=id=/models/path (or a
# config file) to serve those instead.
#
#   docker build -t mobilellmd .
#   docker run -p 8080:8080 mobilellmd                      # the demo model
#   docker run -p 8080:8080 -v $PWD/ckpt:/models:ro \
#     -e MLLMD_MODELS=m125=/models/MobileLLM-125M mobilellmd
# With a config file of your own, also pass -e MLLMD_MODELS= (empty), or the
# demo model is served beside the configured ones.

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
COPY models/mobilellm-demo /usr/share/mobilellmd/models/mobilellm-demo
USER mobilellmd
# Listen on every interface inside the container; everything else comes from
# MLLMD_* variables (file < env < flags).
ENV MLLMD_HOST=0.0.0.0 \
    MLLMD_PORT=8080 \
    MLLMD_MODELS=mobilellm-demo=/usr/share/mobilellmd/models/mobilellm-demo
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
	CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# exec form: the daemon is PID 1's child-free process and gets SIGTERM
# directly (graceful drain, exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mobilellmd", "serve"]
