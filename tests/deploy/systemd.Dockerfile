# systemd.Dockerfile — Debian 12 with systemd as PID 1 and the daemon's
# runtime libraries, for test_systemd_pid1.sh: the unit is started,
# reloaded and stopped by a real systemd 252 (the binary and unit are
# copied in by the test).
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends systemd \
	libmicrohttpd12 libjansson4 libuv1 libopenblas0-pthread \
	&& apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
	&& systemctl mask getty.target systemd-logind.service console-getty.service \
	   systemd-udevd.service systemd-udev-trigger.service
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
