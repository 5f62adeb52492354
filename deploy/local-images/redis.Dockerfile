# stand-in for redis:7 (Debian bookworm's redis-server 7.0): deploy/local-images.sh
FROM local/base
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
