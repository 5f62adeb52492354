# stand-in for prom/alertmanager (Debian bookworm's prometheus-alertmanager 0.25): deploy/local-images.sh
FROM local/base
RUN apt-get update && apt-get install -y --no-install-recommends prometheus-alertmanager \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /alertmanager
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
