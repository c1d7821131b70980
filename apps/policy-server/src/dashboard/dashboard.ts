import { INestApplication } from '@nestjs/common';
import express, { NextFunction, Request, Response } from 'express';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The dashboard's build, next to this server's build in the workspace (apps/dashboard/dist/web). */
export const DEFAULT_DASHBOARD_DIR = resolve(__dirname, '../../../../dashboard/dist/web');

/**
 * Paths that belong to the API, the docs or the probes, never to the
 * dashboard, whatever the request accepts.
 */
const NOT_DASHBOARD = /^\/(docs|openapi\.json|openapi\.yaml|metrics|health|ready)(\/|$)/;

/**
 * True for a browser's navigation to a dashboard page: a GET that prefers
 * HTML. API clients (the CLI, fetch from the dashboard) ask for JSON or
 * anything, and reach the API routes as before, so a dashboard page and an
 * API route may share a path (/hosts is both).
 */
export function wantsDashboardPage(req: Pick<Request, 'method' | 'path' | 'accepts'>): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (NOT_DASHBOARD.test(req.path)) return false;
  return req.accepts(['application/json', 'text/html']) === 'text/html';
}

/**
 * Serves the built dashboard: its static files (hashed, cached for a year)
 * and index.html for any page a browser navigates to (single-page fallback).
 * Registered before the API routes; a request it does not take goes on to
 * them unchanged.
 */
export function serveDashboard(app: INestApplication, dir = DEFAULT_DASHBOARD_DIR): void {
  const index = join(dir, 'index.html');
  const assets = express.static(join(dir, 'assets'), { immutable: true, maxAge: '365d', index: false, fallthrough: true });
  app.use('/assets', assets);
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!wantsDashboardPage(req)) return next();
    if (!existsSync(index)) {
      res.status(503).type('text/plain').send(`the dashboard is not built (no ${index}): run npm run build\n`);
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.sendFile(index);
  });
}
