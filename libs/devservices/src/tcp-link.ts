import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * The network between one client and a service, as a loopback TCP relay the
 * client connects to instead of the service: cut() breaks every open
 * connection and refuses new ones (a link that is down) until restore();
 * other clients of the service are not affected.
 */
export class TcpLink {
  private readonly sockets = new Set<Socket>();
  private up = true;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Listens on a free port of `host` (default 127.0.0.1) and relays to `target`. */
  static async start(target: { host: string; port: number }, host = '127.0.0.1'): Promise<TcpLink> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const link = new TcpLink(server, host, (server.address() as AddressInfo).port);
    server.on('connection', (client) => link.relay(client, target));
    return link;
  }

  /** False between cut() and restore(). */
  get isUp(): boolean {
    return this.up;
  }

  /** Open relayed connections (each is two sockets). */
  get connections(): number {
    return this.sockets.size / 2;
  }

  /** Drops every open connection; new ones are refused until restore(). */
  cut(): void {
    this.up = false;
    for (const s of this.sockets) s.resetAndDestroy();
  }

  restore(): void {
    this.up = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: Socket, target: { host: string; port: number }): void {
    if (!this.up) {
      client.resetAndDestroy();
      return;
    }
    const service = connect(target.port, target.host);
    const end = (): void => {
      client.destroy();
      service.destroy();
    };
    for (const s of [client, service]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on('error', end);
      s.once('close', () => {
        this.sockets.delete(s);
        end();
      });
    }
    client.pipe(service);
    service.pipe(client);
  }
}
