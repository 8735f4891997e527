# syntax=docker/dockerfile:1
# pullback container image.
#   docker build -t ghcr.io/pullback/pullback:0.1.0 .
# Stages: build (dev dependencies, tsc) -> deps (production dependencies only) -> runtime (slim, non-root).
# @confluentinc/kafka-javascript installs its prebuilt librdkafka binding for linux/glibc; deps and
# runtime are both Debian bookworm, so the binding built or fetched in `deps` runs in `runtime`.

FROM node:22-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# tsc needs no native addon: skip install scripts here (the deps stage runs them)
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:22-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# the postinstall script that names the fix when the optional Kafka client did not install
COPY tools/kafka/check-client.cjs ./tools/kafka/check-client.cjs
# the client is optional for npm (demo and replay run without it) but not for the image: fail the build without it
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
 && node -e "require('@confluentinc/kafka-javascript')"

FROM node:22-bookworm-slim AS runtime
# MALLOC_*: glibc returns freed record buffers to the system after a Kafka backlog (fewer arenas,
# large blocks mmapped); without them a drained backlog stayed resident (bench/peer-kafka.ts)
# --max-semi-space-size=2: V8's young generation at 2 x 2 MiB instead of up to 2 x 16 MiB: ~20 MiB
# less resident at idle, and released Kafka record bytes are freed at a scavenge that comes sooner
# (peak RSS draining a 3 M-span backlog ~114 vs ~151 MiB at the same rate and CPU per span,
# bench/peer-kafka.ts, which starts pullback with these same variables: keep them in sync, and in
# the NODE_OPTIONS of k8s/, which replaces this one; test/k8s/manifests.test.ts checks)
# V8's allocation-site pretenuring is turned off by the process itself (src/cli/v8-flags.ts):
# NODE_OPTIONS cannot carry that flag
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    NODE_OPTIONS=--max-semi-space-size=2
WORKDIR /app
# everything root-owned and read-only to the runtime user; nothing is written outside /tmp
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY package.json ./
# the annotated reference config (`pullback config --config /app/config/pullback.yaml`)
COPY config ./config
USER 10001:10001
# OTLP gRPC, OTLP HTTP, admin (/livez /readyz /status)
EXPOSE 4317 4318 13134
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('node:http').get('http://127.0.0.1:13134/livez', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["sidecar", "--config", "/etc/pullback/pullback.yaml"]
