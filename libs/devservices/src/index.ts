export { freePort, waitFor } from './ports';
export { ManagedProcess } from './process';
export { PostgresServer, postgresBinDir } from './postgres';
export type { PostgresOptions } from './postgres';
export { NatsServer, natsServerBin } from './nats';
export type { NatsOptions } from './nats';
export { TcpLink } from './tcp-link';
export { formatNumber, median, printTable, quantile, seededRandom, timeMs, verdict } from './bench';
export type { BenchTable, Cell } from './bench';
