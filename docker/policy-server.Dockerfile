# The policy server. Build from the repository root:
#   docker build -f docker/policy-server.Dockerfile -t cgfence/policy-server .
FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY apps/policy-server/package.json apps/policy-server/
COPY apps/host-agent/package.json apps/host-agent/
COPY apps/cli/package.json apps/cli/
COPY libs/proto/package.json libs/proto/
COPY libs/bpf/package.json libs/bpf/
COPY libs/devservices/package.json libs/devservices/
COPY libs/nats-auth/package.json libs/nats-auth/
COPY migrations/package.json migrations/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY apps apps
COPY libs libs
COPY migrations migrations
RUN node node_modules/typescript7/bin/tsc -b apps/policy-server apps/cli \
 && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    CGFENCE_HTTP_HOST=0.0.0.0 \
    CGFENCE_HTTP_PORT=28080 \
    CGFENCE_STATE_DIR=/var/lib/cgfence-server
WORKDIR /app
COPY --from=build /src /app
RUN useradd --system --home /var/lib/cgfence-server cgfence \
 && mkdir -p /var/lib/cgfence-server && chown cgfence /var/lib/cgfence-server
USER cgfence
VOLUME /var/lib/cgfence-server
EXPOSE 28080
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:28080/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "--enable-source-maps", "apps/policy-server/dist/src/main.js"]
CMD ["serve"]
