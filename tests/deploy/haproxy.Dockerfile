# haproxy.Dockerfile — a stand-in for the official haproxy image, for the
# deploy test on machines that reach no registry: Debian 12's haproxy
# package on the local debian:12-slim, laid out like the official image
# (config at /usr/local/etc/haproxy/haproxy.cfg, foreground master-worker,
# soft stop on SIGUSR1, unprivileged user).
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends haproxy \
	&& apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
	&& mkdir -p /usr/local/etc/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
