# Prometheus for the compose stack from Debian bookworm's prometheus package (FROM the debootstrapped
# prci-base:bookworm of .ci/stack-images.sh: no registry needed). The build context (made by that script) holds
# compose/prometheus/prometheus.yml and alerts.yml; compose.yaml also mounts compose/prometheus/ over
# /etc/prometheus, so an edited rule or target needs a restart, not a rebuild.
# libjs-moment-timezone's raw data (210 MB) is removed: the web UI loads only its prebuilt .min.js files.
FROM prci-base:bookworm
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
        /usr/share/javascript/moment-timezone/data \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
COPY prometheus.yml alerts.yml /etc/prometheus/
RUN promtool check config /etc/prometheus/prometheus.yml
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", \
     "--storage.tsdb.retention.time=15d", "--web.listen-address=0.0.0.0:9090", "--web.enable-lifecycle"]
