# Dockerfile — mobilellmd in two stages: build on Debian 12 with the
# project's Makefile, run on a slim image with only the shared libraries.
# The project's 18 MB demo model is baked in and served by default as
# "mobilellm-demo" (the README's examples work unchanged); mount your own
# checkpoints and name them with MLLMD_MODELS=id=/models/path (or a config
# file) to serve those instead. docs/deploy.md has the whole story.
#
#   docker build -t mobilellmd .
#   docker run -p 127.0.0.1:8080:8080 mobilellmd            # the demo model
#   docker run -p 127.0.0.1:8080:8080 -v $PWD/ckpt:/models:ro \
#     -e MLLMD_MODELS=m125=/models/MobileLLM-125M mobilellmd
# With a config file of your own, also pass -e MLLMD_MODELS= (empty), or the
# demo model is served beside the configured ones.

FROM debian:12-slim AS build
# apt's lists and downloaded packages are removed in the same layer: the
# image must not depend on a base image's apt hook for that.
RUN apt-get update && apt-get install -y --no-install-recommends \
	build-essential pkg-config libmicrohttpd-dev libjansson-dev libuv1-dev \
	libopenblas-dev check \
	&& apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
WORKDIR /src
COPY . .
# Build outside the copied tree so no host build directory is reused; the
# deps stamp tells the Makefile the packages above are present.
RUN mkdir -p /out && touch /out/.deps-ok && make -j"$(nproc)" BUILD=/out all

FROM debian:12-slim
# Only the runtime libraries: no curl (the health check is the daemon's own
# `mobilellmd health`), no compilers, no apt lists or caches, no logs.
RUN apt-get update && apt-get install -y --no-install-recommends \
	libmicrohttpd12 libjansson4 libuv1 libopenblas0-pthread \
	&& apt-get clean \
	&& rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin \
	   /var/log/apt /var/log/dpkg.log \
	&& useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin mobilellmd
COPY --from=build /out/mobilellmd /usr/local/bin/mobilellmd
COPY config/mobilellmd.conf /etc/mobilellmd/mobilellmd.conf.example
COPY models/mobilellm-demo /usr/share/mobilellmd/models/mobilellm-demo
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Listen on every interface inside the container; everything else comes from
# MLLMD_* variables (file < env < flags). The shutdown budget fits Docker's
# default 10 s stop timeout: 2 s lame duck (readiness 503, still serving),
# then up to 5 s for in-flight requests, then at most 2 s to flush errors.
ENV MLLMD_HOST=0.0.0.0 \
    MLLMD_PORT=8080 \
    MLLMD_MODELS=mobilellm-demo=/usr/share/mobilellmd/models/mobilellm-demo \
    MLLMD_DRAIN_DELAY_MS=2000 \
    MLLMD_SHUTDOWN_TIMEOUT_MS=5000
EXPOSE 8080
# Readiness on whatever MLLMD_PORT / MLLMD_HOST say (no hard-coded port).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
	CMD ["/usr/local/bin/mobilellmd", "health"]
# exec form: the daemon is PID 1 and gets SIGTERM directly (lame duck,
# drain, exit 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mobilellmd", "serve"]
