# The platform's image: every process of the README's production table runs from it
# (compose.yaml gives each its command). The runtime requirements only.
FROM python:3.11-slim

# libgomp1: the OpenMP runtime LightGBM's wheel links against (RUL model training)
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# uid 1000: the broker container runs as the same user, so the web process may signal it
# (reload after an enrollment) and both read the broker files.
RUN useradd --uid 1000 --create-home aiot \
    && mkdir -p /var/lib/aiot /etc/aiot /etc/mosquitto/aiot/tls /run/mosquitto /var/lib/mosquitto \
    && chown -R aiot:aiot /var/lib/aiot /etc/aiot /etc/mosquitto/aiot /run/mosquitto /var/lib/mosquitto
USER aiot
ENV PYTHONUNBUFFERED=1 \
    AIOT_VAR_DIR=/var/lib/aiot \
    STATIC_ROOT=/var/lib/aiot/static
