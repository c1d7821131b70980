import type { paths } from './generated/openapi';

type Json<R> = R extends { content: { 'application/json': infer T } } ? T : never;
type Success<Rs> = Rs extends { 200: infer R } ? Json<R> : Rs extends { 201: infer R } ? Json<R> : never;

/** The JSON body a route answers with on success, from the generated OpenAPI types. */
export type ResponseOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { responses: infer Rs } ? Success<Rs> : never;

export type WhoAmI = ResponseOf<'/whoami', 'get'>;
export type Role = WhoAmI['role'];
export type Fleet = ResponseOf<'/fleet', 'get'>;
export type Host = ResponseOf<'/hosts/{id}', 'get'>;
export type Blocklist = ResponseOf<'/blocklists/{name}', 'get'>;
export type Version = ResponseOf<'/blocklists/{name}/versions', 'get'>[number];
export type Rollout = ResponseOf<'/rollouts/{id}', 'get'>;
export type EventsPage = Exclude<ResponseOf<'/events', 'get'>, string>;
/** The filters GET /events and GET /events/aggregate share. */
export type EventFilter = Omit<NonNullable<paths['/events']['get']['parameters']['query']>, 'limit' | 'after' | 'format'>;
export type BlockEvent = EventsPage['events'][number];
export type Aggregate = ResponseOf<'/events/aggregate', 'get'>;
export type Summary = ResponseOf<'/events/summary', 'get'>;
export type Run = ResponseOf<'/runs/{id}', 'get'>;
export type RolloutPlan = NonNullable<paths['/rollouts']['post']['requestBody']>['content']['application/json'];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** True when `held` is at least `needed` (viewer < operator < admin), as the server decides. */
export const can = (held: Role, needed: Role): boolean => RANK[held] >= RANK[needed];
