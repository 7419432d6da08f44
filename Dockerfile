# The application image in two stages: the build stage compiles the server to JavaScript (`npm run build`,
# dist/) with the development dependencies; the runtime image holds the production dependencies, the
# compiled server and what it reads at run time (drizzle/ migrations, console/), and runs dist/src/main.js.

FROM node:20-slim AS build
WORKDIR /app
# patches/ is applied by the postinstall script (patch-package): the postgres.js fix and the Aedes changes
# (refusal reason codes, the slow-reader limit, UNSUBSCRIBE rewriting) must be in the image.
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
# The web console's static files (README "Web console"): built here, as the server runs as `node` and
# cannot write into /app; a fresh build is what the server serves without building again.
RUN npm run build && node --import tsx console/build.ts

FROM node:20-slim

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    DATA_DIR=/app/data

WORKDIR /app

# Dependencies first: this layer is reused until package-lock.json changes.
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# The sources stay beside the compiled server: the console's build fingerprint reads console/src and
# console/build.ts. The CLI is compiled too and runs with Node: `node dist/src/cli/cli.js <command>`.
COPY . .
COPY --from=build /app/dist ./dist
COPY --from=build /app/console/dist ./console/dist

# The embedded database (when DATABASE_URL is unset) and the CLI's control socket live in DATA_DIR.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]

EXPOSE 8080 1883 28801

# Readiness: 503 while the database does not answer, a listener is not bound, reports are held
# back or the server drains after SIGTERM (/livez only tells that the process answers). It asks the
# plaintext port, or HTTPS_PORT when HTTP_PORT=off (docs/tls.md §3); the certificate is not checked:
# the probe talks to this container's own server, whose certificate names the public host.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const e = process.env, tls = e.HTTP_PORT === 'off', port = tls ? e.HTTPS_PORT || 8443 : e.HTTP_PORT || 8080; require(tls ? 'node:https' : 'node:http').get({ host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false, timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('timeout', () => process.exit(1)).on('error', () => process.exit(1))"]

# Node itself, not `npm start`: a signal sent to npm does not reach the server, so `docker stop` would
# end it without its graceful stop (drain, flush of waiting reports). The compiled server, with npm
# start's Node flags (package.json; test/unit/deploy-config.test.ts keeps them equal).
CMD ["node", "--max-semi-space-size=32", "--no-allocation-site-pretenuring", "dist/src/main.js"]
